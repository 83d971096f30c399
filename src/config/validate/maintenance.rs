//! Validating the maintenance sections of a database: `health`,
//! `optimize` and `drill`, each merged key by key with `defaults`.

use super::*;

impl Validator<'_> {
    pub(super) fn health(
        &mut self,
        db: Option<&RawHealth>,
        def: Option<&RawHealth>,
        path: &FieldPath,
        def_path: &FieldPath,
    ) -> Option<Sourced<Health>> {
        let empty = RawHealth::default();
        let (db, def) = (db.unwrap_or(&empty), def.unwrap_or(&empty));
        let every = v(&db.every)
            .or(v(&def.every))
            .map_or(DEFAULT_HEALTH_EVERY, HumanDuration::get);
        if every.is_zero() {
            let at = if db.every.is_some() { path } else { def_path };
            self.error(&at.key("every"), "interval must be longer than 0s");
            return None;
        }
        let age_path = if db.max_backup_age.is_some() {
            path
        } else {
            def_path
        }
        .key("max_backup_age");
        Some(Sourced {
            path: age_path,
            value: Health {
                enabled: v(&db.enabled).or(v(&def.enabled)).unwrap_or(true),
                every,
                max_wal_size: v(&db.max_wal_size)
                    .or(v(&def.max_wal_size))
                    .unwrap_or(DEFAULT_MAX_WAL_SIZE),
                min_free_disk: v(&db.min_free_disk)
                    .or(v(&def.min_free_disk))
                    .unwrap_or(DEFAULT_MIN_FREE_DISK),
                max_backup_age: v(&db.max_backup_age)
                    .or(v(&def.max_backup_age))
                    .map(HumanDuration::get),
                quick_check: v(&db.quick_check)
                    .or(v(&def.quick_check))
                    .map_or(DEFAULT_QUICK_CHECK_EVERY, HumanDuration::get),
                integrity_check: v(&db.integrity_check)
                    .or(v(&def.integrity_check))
                    .map_or(DEFAULT_INTEGRITY_CHECK_EVERY, HumanDuration::get),
            },
        })
    }

    pub(super) fn optimize(
        &mut self,
        db: Option<&RawOptimize>,
        def: Option<&RawOptimize>,
        path: &FieldPath,
        def_path: &FieldPath,
    ) -> Option<Optimize> {
        let empty = RawOptimize::default();
        let (db, def) = (db.unwrap_or(&empty), def.unwrap_or(&empty));
        let schedule = match self
            .schedule(
                (v(&db.every), v(&db.schedule)),
                (v(&def.every), v(&def.schedule)),
                path,
                def_path,
            )
            .ok()?
        {
            Some(schedule) => schedule.value,
            None => Schedule::Cron(match self.crons.get(DEFAULT_OPTIMIZE_SCHEDULE) {
                Some(parsed) => Arc::clone(parsed),
                None => {
                    self.shared_cron(CronPattern::parse_scalar(DEFAULT_OPTIMIZE_SCHEDULE).ok()?)
                }
            }),
        };
        Some(Optimize {
            enabled: v(&db.enabled).or(v(&def.enabled)).unwrap_or(true),
            schedule,
            vacuum: v(&db.vacuum).or(v(&def.vacuum)).unwrap_or(false),
        })
    }

    /// The drill settings; `None` when neither the database nor the
    /// defaults declare `drill:`. A drill needs `every` or `schedule`.
    pub(super) fn drill(
        &mut self,
        db: Option<&RawDrill>,
        def: Option<&RawDrill>,
        path: &FieldPath,
        def_path: &FieldPath,
    ) -> Result<Option<Drill>, ()> {
        if db.is_none() && def.is_none() {
            return Ok(None);
        }
        let empty = RawDrill::default();
        let (raw_db, raw_def) = (db.unwrap_or(&empty), def.unwrap_or(&empty));
        let schedule = self
            .schedule(
                (v(&raw_db.every), v(&raw_db.schedule)),
                (v(&raw_def.every), v(&raw_def.schedule)),
                path,
                def_path,
            )
            .map_err(|_| ())?;
        let Some(schedule) = schedule else {
            let at = if db.is_some() { path } else { def_path };
            self.error(
                at,
                "a drill needs `every` or `schedule`, e.g. `schedule: \"0 4 * * 0\"`",
            );
            return Err(());
        };
        Ok(Some(Drill {
            schedule: schedule.value,
            freshness_sql: raw_db
                .freshness_sql
                .as_ref()
                .or(raw_def.freshness_sql.as_ref())
                .map(|t| t.0.clone()),
            max_lag: v(&raw_db.max_lag)
                .or(v(&raw_def.max_lag))
                .map(HumanDuration::get),
            from: v(&raw_db.from)
                .or(v(&raw_def.from))
                .unwrap_or(DrillFrom::Local),
        }))
    }
}
