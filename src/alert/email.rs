//! Delivering mail: the [`Mailer`] seam and its SMTP implementation.
//!
//! Owns [`SmtpMailer`] (lettre, `tls: none|starttls|tls`, credentials from
//! `password_env`/`password_file`, read when the mailer is built and never
//! printed: its `Debug` redacts it) and [`RecordingMailer`] for tests. A
//! mail is plain text with one or more notifications.

use std::sync::Mutex;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::config::{Environment, PasswordSource, Smtp, SmtpTls};

/// How long one SMTP conversation may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// One mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Recipients.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Why a mail was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address or the message could not be built.
    #[error("cannot build the mail: {0}")]
    Build(String),
    /// The password could not be read.
    #[error("smtp: {0}")]
    Password(String),
    /// The SMTP server refused or could not be reached.
    #[error("smtp {server}: {detail}")]
    Smtp {
        /// `host:port`.
        server: String,
        /// What went wrong (never the password).
        detail: String,
    },
}

/// Sends mail.
pub trait Mailer: Send + Sync {
    /// Delivers `mail`, or says why not.
    fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// Mail through an SMTP server.
pub struct SmtpMailer {
    transport: SmtpTransport,
    from: Mailbox,
    server: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("password", &"<redacted>")
            .finish()
    }
}

impl SmtpMailer {
    /// A mailer for `smtp`, reading its password from `environment` or its
    /// file now.
    pub fn new(smtp: &Smtp, environment: &Environment) -> Result<Self, MailError> {
        let server = format!("{}:{}", smtp.host, smtp.port);
        let smtp_error = |detail: String| MailError::Smtp {
            server: server.clone(),
            detail,
        };
        let tls = |host: &str| {
            TlsParameters::new(host.to_string()).map_err(|e| smtp_error(e.to_string()))
        };
        let mut builder = SmtpTransport::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .timeout(Some(SMTP_TIMEOUT));
        builder = match smtp.tls {
            SmtpTls::None => builder.tls(Tls::None),
            SmtpTls::Starttls => builder.tls(Tls::Required(tls(&smtp.host)?)),
            SmtpTls::Tls => builder.tls(Tls::Wrapper(tls(&smtp.host)?)),
        };
        if let Some(username) = &smtp.username {
            let password = match &smtp.password {
                Some(PasswordSource::Env(name)) => {
                    environment.get(name).map(str::to_string).ok_or_else(|| {
                        MailError::Password(format!(
                            "environment variable `{name}` (password_env) is not set"
                        ))
                    })?
                }
                Some(PasswordSource::File(path)) => crate::regular::read(path)
                    .map(|p| {
                        String::from_utf8_lossy(&p)
                            .trim_end_matches(['\n', '\r'])
                            .to_string()
                    })
                    .map_err(|e| {
                        MailError::Password(format!("{} (password_file): {e}", path.display()))
                    })?,
                None => String::new(),
            };
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        let from: Mailbox = smtp
            .from
            .0
            .parse()
            .map_err(|e| MailError::Build(format!("from `{}`: {e}", smtp.from.0)))?;
        Ok(SmtpMailer {
            transport: builder.build(),
            from,
            server,
        })
    }

    /// `host:port` of the server.
    pub fn server(&self) -> &str {
        &self.server
    }
}

impl Mailer for SmtpMailer {
    fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(&mail.subject);
        for to in &mail.to {
            let to: Mailbox = to
                .parse()
                .map_err(|e| MailError::Build(format!("to `{to}`: {e}")))?;
            message = message.to(to);
        }
        let message = message
            .body(mail.body.clone())
            .map_err(|e| MailError::Build(e.to_string()))?;
        self.transport
            .send(&message)
            .map(|_| ())
            .map_err(|e| MailError::Smtp {
                server: self.server.clone(),
                detail: e.to_string(),
            })
    }
}

/// Keeps every mail instead of sending it (tests).
#[derive(Debug, Default)]
pub struct RecordingMailer {
    sent: Mutex<Vec<Mail>>,
}

impl RecordingMailer {
    /// The mails "sent" so far.
    pub fn sent(&self) -> Vec<Mail> {
        self.sent.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Mailer for RecordingMailer {
    fn send(&self, mail: &Mail) -> Result<(), MailError> {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(mail.clone());
        }
        Ok(())
    }
}
