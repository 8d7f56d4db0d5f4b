//! Desired state in an embedded SQLite file: classes, labs (with their topology and student
//! token), events and exercise progress. A row in `labs` means "this lab should exist".

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Where a lab is in its life, as far as the controller knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabState {
    /// Wanted, not created yet (or being created when the controller stopped).
    Pending,
    /// Every node ready.
    Ready,
    /// The last attempt failed; retried after `next_try`.
    Failed,
}

impl LabState {
    pub fn as_str(self) -> &'static str {
        match self {
            LabState::Pending => "pending",
            LabState::Ready => "ready",
            LabState::Failed => "failed",
        }
    }
    fn parse(s: &str) -> LabState {
        match s {
            "ready" => LabState::Ready,
            "failed" => LabState::Failed,
            _ => LabState::Pending,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LabRow {
    pub name: String,
    pub class: Option<String>,
    pub student: Option<String>,
    /// The topology source (YAML).
    #[serde(skip)]
    pub topology: String,
    pub topology_name: String,
    #[serde(skip)]
    pub token: String,
    pub created: i64,
    pub expires: i64,
    pub state: LabState,
    pub attempts: i64,
    pub next_try: i64,
    pub last_error: Option<String>,
    pub warned: bool,
    /// Apply every part (a reference lab) instead of leaving exercises to the student.
    pub complete: bool,
    /// Started by `v6lab up`; the controller only enforces its lifetime.
    pub adopted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassRow {
    pub name: String,
    pub topology_name: String,
    #[serde(skip)]
    pub topology: String,
    pub created: i64,
    pub expires: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub ts: i64,
    pub lab: Option<String>,
    pub class: Option<String>,
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgressRow {
    pub lab: String,
    pub exercise: String,
    pub passed: bool,
    pub first_pass: Option<i64>,
    pub checked: i64,
    pub detail: String,
}

/// A handle on the store; cheap to clone. SQLite calls are short; they run under a mutex.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS classes (
    name TEXT PRIMARY KEY,
    topology_name TEXT NOT NULL,
    topology TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS labs (
    name TEXT PRIMARY KEY,
    class TEXT REFERENCES classes(name) ON DELETE CASCADE,
    student TEXT,
    topology_name TEXT NOT NULL,
    topology TEXT NOT NULL,
    token TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    warned INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 0,
    adopted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS labs_class ON labs(class);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    lab TEXT,
    class TEXT,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS progress (
    lab TEXT NOT NULL,
    exercise TEXT NOT NULL,
    passed INTEGER NOT NULL,
    first_pass INTEGER,
    checked INTEGER NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (lab, exercise)
);
"#;

fn class_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClassRow> {
    Ok(ClassRow {
        name: r.get("name")?,
        topology_name: r.get("topology_name")?,
        topology: r.get("topology")?,
        created: r.get("created")?,
        expires: r.get("expires")?,
    })
}

fn lab_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<LabRow> {
    Ok(LabRow {
        name: r.get("name")?,
        class: r.get("class")?,
        student: r.get("student")?,
        topology: r.get("topology")?,
        topology_name: r.get("topology_name")?,
        token: r.get("token")?,
        created: r.get("created")?,
        expires: r.get("expires")?,
        state: LabState::parse(&r.get::<_, String>("state")?),
        attempts: r.get("attempts")?,
        next_try: r.get("next_try")?,
        last_error: r.get("last_error")?,
        warned: r.get::<_, i64>("warned")? != 0,
        complete: r.get::<_, i64>("complete")? != 0,
        adopted: r.get::<_, i64>("adopted")? != 0,
    })
}

impl Store {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// A store in memory, for tests.
    pub fn memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut c)?)
    }

    /// Inserts a class and its labs in one transaction.
    pub fn insert_class(&self, class: &ClassRow, labs: &[LabRow]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO classes (name, topology_name, topology, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![class.name, class.topology_name, class.topology, class.created, class.expires],
            )?;
            for l in labs {
                insert_lab(&tx, l)?;
            }
            tx.commit()
        })
    }

    pub fn insert_lab(&self, lab: &LabRow) -> Result<(), StoreError> {
        self.with(|c| insert_lab(c, lab))
    }

    pub fn class(&self, name: &str) -> Result<Option<ClassRow>, StoreError> {
        self.with(|c| {
            c.query_row("SELECT * FROM classes WHERE name = ?1", [name], class_from)
                .optional()
        })
    }

    pub fn classes(&self) -> Result<Vec<ClassRow>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT * FROM classes ORDER BY created, name")?;
            let rows = st.query_map([], class_from)?;
            rows.collect()
        })
    }

    pub fn lab(&self, name: &str) -> Result<Option<LabRow>, StoreError> {
        self.with(|c| {
            c.query_row("SELECT * FROM labs WHERE name = ?1", [name], lab_from)
                .optional()
        })
    }

    pub fn labs(&self) -> Result<Vec<LabRow>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT * FROM labs ORDER BY class, name")?;
            let rows = st.query_map([], lab_from)?;
            rows.collect()
        })
    }

    pub fn class_labs(&self, class: &str) -> Result<Vec<LabRow>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT * FROM labs WHERE class = ?1 ORDER BY name")?;
            let rows = st.query_map([class], lab_from)?;
            rows.collect()
        })
    }

    pub fn set_state(
        &self,
        lab: &str,
        state: LabState,
        error: Option<&str>,
        next_try: i64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let attempts = if state == LabState::Failed { "attempts + 1" } else { "0" };
            c.execute(
                &format!("UPDATE labs SET state = ?2, last_error = ?3, next_try = ?4, attempts = {attempts} WHERE name = ?1"),
                params![lab, state.as_str(), error, next_try],
            )?;
            Ok(())
        })
    }

    pub fn set_warned(&self, lab: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("UPDATE labs SET warned = 1 WHERE name = ?1", [lab])
                .map(|_| ())
        })
    }

    /// Moves a class's expiry (and its labs'); returns false when there is no such class.
    pub fn extend_class(&self, class: &str, expires: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE classes SET expires = ?2 WHERE name = ?1",
                params![class, expires],
            )?;
            tx.execute(
                "UPDATE labs SET expires = ?2, warned = 0 WHERE class = ?1",
                params![class, expires],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    pub fn extend_lab(&self, lab: &str, expires: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE labs SET expires = ?2, warned = 0 WHERE name = ?1",
                params![lab, expires],
            )? > 0)
        })
    }

    /// Forgets a class and its labs (the reconciler removes what is left on the runtime).
    pub fn delete_class(&self, class: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM progress WHERE lab IN (SELECT name FROM labs WHERE class = ?1)",
                [class],
            )?;
            tx.execute("DELETE FROM labs WHERE class = ?1", [class])?;
            let n = tx.execute("DELETE FROM classes WHERE name = ?1", [class])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    pub fn delete_lab(&self, lab: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM progress WHERE lab = ?1", [lab])?;
            Ok(c.execute("DELETE FROM labs WHERE name = ?1", [lab])? > 0)
        })
    }

    /// Removes classes whose every lab is gone.
    pub fn drop_empty_classes(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT name FROM classes WHERE name NOT IN (SELECT class FROM labs WHERE class IS NOT NULL)")?;
            let names: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            for n in &names {
                c.execute("DELETE FROM classes WHERE name = ?1", [n])?;
            }
            Ok(names)
        })
    }

    pub fn event(
        &self,
        ts: i64,
        lab: Option<&str>,
        class: Option<&str>,
        kind: &str,
        message: &str,
    ) -> Result<i64, StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO events (ts, lab, class, kind, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![ts, lab, class, kind, message],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Events after `since` (an event id), oldest first, at most `limit`.
    pub fn events(&self, since: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT * FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")?;
            let rows = st.query_map(params![since, limit], |r| {
                Ok(EventRow {
                    id: r.get("id")?,
                    ts: r.get("ts")?,
                    lab: r.get("lab")?,
                    class: r.get("class")?,
                    kind: r.get("kind")?,
                    message: r.get("message")?,
                })
            })?;
            rows.collect()
        })
    }

    pub fn last_event_id(&self) -> Result<i64, StoreError> {
        self.with(|c| c.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0)))
    }

    /// Records a check run; returns true when the exercise's status changed.
    pub fn record_progress(
        &self,
        lab: &str,
        exercise: &str,
        passed: bool,
        now: i64,
        detail: &str,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            let prev: Option<(i64, Option<i64>)> = c
                .query_row("SELECT passed, first_pass FROM progress WHERE lab = ?1 AND exercise = ?2", params![lab, exercise], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let first_pass = match prev {
                Some((_, Some(t))) => Some(t),
                _ if passed => Some(now),
                _ => None,
            };
            c.execute(
                "INSERT INTO progress (lab, exercise, passed, first_pass, checked, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (lab, exercise) DO UPDATE SET passed = ?3, first_pass = ?4, checked = ?5, detail = ?6",
                params![lab, exercise, passed as i64, first_pass, now, detail],
            )?;
            Ok(prev.map(|(p, _)| (p != 0) != passed).unwrap_or(true))
        })
    }

    pub fn progress(&self, lab: &str) -> Result<Vec<ProgressRow>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT * FROM progress WHERE lab = ?1 ORDER BY exercise")?;
            let rows = st.query_map([lab], |r| {
                Ok(ProgressRow {
                    lab: r.get("lab")?,
                    exercise: r.get("exercise")?,
                    passed: r.get::<_, i64>("passed")? != 0,
                    first_pass: r.get("first_pass")?,
                    checked: r.get("checked")?,
                    detail: r.get("detail")?,
                })
            })?;
            rows.collect()
        })
    }
}

fn insert_lab(c: &Connection, l: &LabRow) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO labs (name, class, student, topology_name, topology, token, created, expires, state, attempts, next_try, last_error, warned, complete, adopted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            l.name, l.class, l.student, l.topology_name, l.topology, l.token, l.created, l.expires,
            l.state.as_str(), l.attempts, l.next_try, l.last_error, l.warned as i64, l.complete as i64, l.adopted as i64
        ],
    )?;
    Ok(())
}
