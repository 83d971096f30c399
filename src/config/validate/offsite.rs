//! Validation of `offsite:` blocks (`settings.offsite`,
//! `defaults.backup.offsite`, a database's `backup.offsite`).

use std::sync::Arc;
use std::time::Duration;

use super::{FieldPath, Validator, v};
use crate::config::model::{
    Backup, Drill, DrillFrom, Offsite, OffsiteUrl, PasswordSource, Retention,
};
use crate::config::raw::{RawDatabase, RawOffsite};
use crate::config::secret::{
    DEFAULT_ACCESS_KEY_ID_ENV, DEFAULT_SECRET_ACCESS_KEY_ENV, VariableName,
};
use crate::config::values::HumanDuration;

/// How old the newest remote copy may get by default.
pub const DEFAULT_MAX_AGE_LAG: Duration = Duration::from_secs(2 * 3600);

/// The S3 region when none is given.
pub const DEFAULT_REGION: &str = "us-east-1";

impl Validator<'_> {
    /// The offsite block at `path`; `None` (with errors reported) when it
    /// is invalid. `local` is the database's retention, the default.
    pub(super) fn offsite(
        &mut self,
        raw: &RawOffsite,
        path: &FieldPath,
        local: Option<Retention>,
    ) -> Option<Offsite> {
        let url = match OffsiteUrl::parse(raw.url.0.trim()) {
            Ok(url) => url,
            Err(why) => {
                self.error(&path.key("url"), format!("`{}` {why}", raw.url.0));
                return None;
            }
        };
        let endpoint = raw.endpoint.as_ref().map(|e| e.0.trim().to_string());
        let allow_http = v(&raw.allow_http).unwrap_or(false);
        if let Some(endpoint) = &endpoint {
            if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                self.error(
                    &path.key("endpoint"),
                    "must start with https:// (or http:// with allow_http: true)",
                );
                return None;
            }
            if endpoint.starts_with("http://") && !allow_http {
                self.error(
                    &path.key("endpoint"),
                    "is http://, which sends the copies and signed requests unencrypted; set allow_http: true to allow it (a test server or a private network)",
                );
                return None;
            }
        }
        if matches!(url, OffsiteUrl::File(_)) && endpoint.is_some() {
            self.warn(
                &path.key("endpoint"),
                "a file:// offsite is a directory; endpoint is not used",
            );
        }
        let retention = match &raw.retention {
            Some(raw) => self.retention(Some(raw), None),
            None => local.unwrap_or_default(),
        };
        let max_age_lag = v(&raw.max_age_lag).map_or(DEFAULT_MAX_AGE_LAG, HumanDuration::get);
        if max_age_lag.is_zero() {
            self.error(&path.key("max_age_lag"), "must be longer than 0s");
            return None;
        }
        Some(Offsite {
            url,
            endpoint,
            region: raw
                .region
                .as_ref()
                .map_or(DEFAULT_REGION.to_string(), |r| r.0.trim().to_string()),
            allow_http,
            access_key_id: self.credential(
                (&raw.access_key_id_env, &raw.access_key_id_file),
                DEFAULT_ACCESS_KEY_ID_ENV,
                path,
                "access_key_id",
            )?,
            secret_access_key: self.credential(
                (&raw.secret_access_key_env, &raw.secret_access_key_file),
                DEFAULT_SECRET_ACCESS_KEY_ENV,
                path,
                "secret_access_key",
            )?,
            retention,
            max_age_lag,
        })
    }

    /// Where one credential is read from: `<name>_env` (default
    /// `default_env`) or `<name>_file`, not both.
    fn credential(
        &mut self,
        (env, file): (&Option<VariableName>, &Option<crate::config::raw::Text>),
        default_env: &str,
        path: &FieldPath,
        name: &str,
    ) -> Option<PasswordSource> {
        match (env, file) {
            (Some(_), Some(_)) => {
                self.error(
                    &path.key(&format!("{name}_file")),
                    format!("set either `{name}_env` or `{name}_file`, not both"),
                );
                None
            }
            (_, Some(file)) => Some(PasswordSource::File(self.resolve(&file.0))),
            (Some(variable), None) => Some(PasswordSource::Env(variable.0.clone())),
            (None, None) => Some(PasswordSource::Env(default_env.to_string())),
        }
    }

    /// The offsite store of a database: its own `backup.offsite`, else
    /// `defaults.backup.offsite`, else `settings.offsite`.
    pub(super) fn database_offsite(
        &mut self,
        own: Option<&RawOffsite>,
        inherited: Option<&RawOffsite>,
        path: &FieldPath,
        def_path: &FieldPath,
        local: Retention,
    ) -> Option<Arc<Offsite>> {
        match (own, inherited) {
            (Some(raw), _) => self
                .offsite(raw, &path.key("offsite"), Some(local))
                .map(Arc::new),
            (None, Some(raw)) => self
                .offsite(raw, &def_path.key("offsite"), Some(local))
                .map(Arc::new),
            (None, None) => match &self.settings_offsite {
                Some((offsite, true)) => Some(Arc::clone(offsite)),
                Some((offsite, false)) => Some(Arc::new(Offsite {
                    retention: local,
                    ..(**offsite).clone()
                })),
                None => None,
            },
        }
    }

    /// A drill `from: offsite` needs an offsite store.
    pub(super) fn check_drill_source(
        &mut self,
        drill: &Drill,
        backup: &Backup,
        raw: &RawDatabase,
        path: &FieldPath,
        def_path: &FieldPath,
    ) {
        if drill.from == DrillFrom::Offsite && backup.offsite.is_none() {
            let own = raw.drill.as_ref().is_some_and(|d| d.from.is_some());
            let at = if own { path } else { def_path };
            self.error(
                &at.key("from"),
                "`from: offsite` needs an offsite store: add `offsite:` under settings or this database's backup",
            );
        }
    }
}
