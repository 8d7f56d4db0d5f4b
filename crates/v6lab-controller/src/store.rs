//! Desired state in an embedded SQLite file: classes, labs (with their topology and student
//! token), events, exercise progress and web sessions. A row in `labs` means "this lab should
//! exist".
//!
//! At rest, a student token is kept as its SHA-256 digest (indexed: a login is one lookup, never
//! a scan) and sealed (encrypted) under a key kept next to the database (`tokens.key`, 0600), so
//! that the access sheet can be printed again; a copy of the database alone reveals no token.
//! Web sessions are stored as digests of their ids. The state directory is 0700, the database
//! and its WAL/SHM files 0600: checked (and fixed) on open.

use hmac::{Hmac, Mac};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "{path}: {error}; the state directory must be the controller's alone (chmod 700 DIR, chmod 600 DIR/v6lab.db*)"
    )]
    Private { path: String, error: std::io::Error },
}

/// How many web sessions a lab (or the administrator) keeps (the oldest end).
pub const SESSIONS_KEPT: i64 = 32;

/// How many events the store keeps (the oldest are pruned).
pub const EVENTS_KEPT: i64 = 20_000;

/// Where a lab is in its life, as far as the controller knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabState {
    /// Wanted, not created yet (or being created when the controller stopped).
    Pending,
    /// Every node ready.
    Ready,
    /// The last attempt failed; retried after `next_try`.
    Failed,
}

#[cfg(test)]
impl LabRow {
    /// A lab row for tests: pending, outside any class, with `token`.
    pub fn sample(name: &str, token: &str) -> LabRow {
        LabRow {
            name: name.into(),
            class: None,
            student: Some(name.rsplit('-').next().unwrap_or(name).into()),
            topology: "name: t".into(),
            topology_name: "t".into(),
            token: token.into(),
            created: 1,
            expires: 2,
            state: LabState::Pending,
            attempts: 0,
            next_try: 0,
            last_error: None,
            warned: false,
            complete: false,
            adopted: false,
        }
    }
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
    /// The student token in clear (empty: none). Stored as a digest and sealed, never in clear.
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRow {
    pub id: i64,
    pub ts: i64,
    pub lab: Option<String>,
    pub class: Option<String>,
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgressRow {
    pub lab: String,
    pub exercise: String,
    pub passed: bool,
    pub first_pass: Option<i64>,
    pub checked: i64,
    pub detail: String,
}

/// A web session, found by the digest of its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// `None`: the administrator's session.
    pub lab: Option<String>,
    /// The digest of the token the session was opened with: a new token ends the session.
    pub token_digest: String,
    pub expires: i64,
}

/// A handle on the store; cheap to clone. SQLite calls are short; they run under a mutex.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    seal: Arc<[u8; 32]>,
}

/// The SHA-256 digest of a token (or session id), in hex: how secrets are kept and looked up.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The keystream sealing the token whose digest is `d` (HMAC-SHA256 in counter mode; the
/// digest of a random token is unique, so no keystream is used twice).
fn keystream(key: &[u8; 32], d: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u32;
    while out.len() < len {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
        m.update(b"v6lab token seal\0");
        m.update(d.as_bytes());
        m.update(&i.to_be_bytes());
        out.extend_from_slice(&m.finalize().into_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn seal(key: &[u8; 32], token: &str) -> String {
    let d = digest(token);
    let ks = keystream(key, &d, token.len());
    hex::encode(
        token
            .bytes()
            .zip(ks)
            .map(|(a, b)| a ^ b)
            .collect::<Vec<u8>>(),
    )
}

/// The token sealed as `sealed` whose digest is `d`; `None` when it does not open (another key).
fn unseal(key: &[u8; 32], d: &str, sealed: &str) -> Option<String> {
    let b = hex::decode(sealed).ok()?;
    let ks = keystream(key, d, b.len());
    let t = String::from_utf8(b.iter().zip(ks).map(|(a, b)| a ^ b).collect()).ok()?;
    (digest(&t) == d).then_some(t)
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
    token_digest TEXT,
    token_sealed TEXT,
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
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY,
    lab TEXT,
    token_digest TEXT NOT NULL,
    expires INTEGER NOT NULL
);
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
CREATE TABLE IF NOT EXISTS variations (
    lab TEXT PRIMARY KEY,
    number INTEGER NOT NULL
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

fn lab_from(key: &[u8; 32], r: &rusqlite::Row<'_>) -> rusqlite::Result<LabRow> {
    let d: Option<String> = r.get("token_digest")?;
    let sealed: Option<String> = r.get("token_sealed")?;
    let token = match (d, sealed) {
        (Some(d), Some(s)) => unseal(key, &d, &s).unwrap_or_default(),
        _ => String::new(),
    };
    Ok(LabRow {
        name: r.get("name")?,
        class: r.get("class")?,
        student: r.get("student")?,
        topology: r.get("topology")?,
        topology_name: r.get("topology_name")?,
        token,
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
    /// Opens (creating) the store at `path`, in a private state directory (see the module).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let private = |p: &Path, error: std::io::Error| StoreError::Private {
            path: p.display().to_string(),
            error,
        };
        make_private(dir, 0o700).map_err(|e| private(dir, e))?;
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| private(path, e))?;
        }
        let key = crate::auth::secret_file(dir, "tokens.key").map_err(|e| private(dir, e))?;
        let conn = Connection::open(path)?;
        let store = Self::init(conn, key)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut f = path.as_os_str().to_owned();
            f.push(suffix);
            let f = std::path::PathBuf::from(f);
            if f.exists() {
                make_private(&f, 0o600).map_err(|e| private(&f, e))?;
            }
        }
        Ok(store)
    }

    /// A store in memory, for tests.
    pub fn memory() -> Result<Store, StoreError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the kernel's random source");
        Self::init(Connection::open_in_memory()?, key)
    }

    fn init(conn: Connection, key: [u8; 32]) -> Result<Store, StoreError> {
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn, &key)?;
        conn.execute_batch("CREATE INDEX IF NOT EXISTS labs_token ON labs(token_digest);")?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            seal: Arc::new(key),
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
                insert_lab(&tx, &self.seal, l)?;
            }
            tx.commit()
        })
    }

    pub fn insert_lab(&self, lab: &LabRow) -> Result<(), StoreError> {
        self.with(|c| insert_lab(c, &self.seal, lab))
    }

    /// The lab whose student token is `token` (found by its digest, through an index).
    pub fn lab_by_token(&self, token: &str) -> Result<Option<LabRow>, StoreError> {
        if token.is_empty() {
            return Ok(None);
        }
        self.with(|c| {
            c.query_row(
                "SELECT * FROM labs WHERE token_digest = ?1",
                [digest(token)],
                |r| lab_from(&self.seal, r),
            )
            .optional()
        })
    }

    /// The digest of a lab's student token (`None`: no such lab, or no token).
    pub fn token_digest(&self, lab: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT token_digest FROM labs WHERE name = ?1",
                [lab],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
        })
    }

    /// Replaces a lab's student token (its sessions end with the old one).
    pub fn set_token(&self, lab: &str, token: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE labs SET token_digest = ?2, token_sealed = ?3 WHERE name = ?1",
                params![lab, digest(token), seal(&self.seal, token)],
            )? > 0)
        })
    }

    /// Records a web session (by the digest of its id); forgets expired ones.
    pub fn insert_session(&self, id: &str, s: &SessionRow, now: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM sessions WHERE expires <= ?1", [now])?;
            c.execute(
                "INSERT OR REPLACE INTO sessions (digest, lab, token_digest, expires) VALUES (?1, ?2, ?3, ?4)",
                params![digest(id), s.lab, s.token_digest, s.expires],
            )?;
            // A lab (or the administrator) keeps its newest sessions only: opening a link in a
            // loop cannot fill the store.
            c.execute(
                "DELETE FROM sessions WHERE lab IS ?1 AND rowid NOT IN
                 (SELECT rowid FROM sessions WHERE lab IS ?1 ORDER BY rowid DESC LIMIT ?2)",
                params![s.lab, SESSIONS_KEPT],
            )?;
            Ok(())
        })
    }

    pub fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT lab, token_digest, expires FROM sessions WHERE digest = ?1",
                [digest(id)],
                |r| {
                    Ok(SessionRow {
                        lab: r.get(0)?,
                        token_digest: r.get(1)?,
                        expires: r.get(2)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Ends a session (sign-out).
    pub fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM sessions WHERE digest = ?1", [digest(id)])
                .map(|_| ())
        })
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
            c.query_row("SELECT * FROM labs WHERE name = ?1", [name], |r| {
                lab_from(&self.seal, r)
            })
            .optional()
        })
    }

    pub fn labs(&self) -> Result<Vec<LabRow>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT * FROM labs ORDER BY class, name")?;
            let rows = st.query_map([], |r| lab_from(&self.seal, r))?;
            rows.collect()
        })
    }

    pub fn class_labs(&self, class: &str) -> Result<Vec<LabRow>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT * FROM labs WHERE class = ?1 ORDER BY name")?;
            let rows = st.query_map([class], |r| lab_from(&self.seal, r))?;
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
            let id = c.last_insert_rowid();
            if id % 100 == 0 {
                c.execute("DELETE FROM events WHERE id <= ?1", [id - EVENTS_KEPT])?;
            }
            Ok(id)
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

    /// Records the per-student variation of labs (`vary:`), kept when other labs go.
    pub fn set_variations(&self, labs: &[(String, u8)]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            for (lab, n) in labs {
                tx.execute(
                    "INSERT OR REPLACE INTO variations (lab, number) VALUES (?1, ?2)",
                    params![lab, n],
                )?;
            }
            tx.commit()
        })
    }

    /// The per-student variation recorded for a lab, if any.
    pub fn variation(&self, lab: &str) -> Result<Option<u8>, StoreError> {
        self.with(|c| {
            c.query_row("SELECT number FROM variations WHERE lab = ?1", [lab], |r| {
                r.get(0)
            })
            .optional()
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

fn insert_lab(c: &Connection, key: &[u8; 32], l: &LabRow) -> rusqlite::Result<()> {
    let (d, sealed) = match l.token.as_str() {
        "" => (None, None),
        t => (Some(digest(t)), Some(seal(key, t))),
    };
    c.execute(
        "INSERT INTO labs (name, class, student, topology_name, topology, token_digest, token_sealed, created, expires, state, attempts, next_try, last_error, warned, complete, adopted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            l.name, l.class, l.student, l.topology_name, l.topology, d, sealed, l.created, l.expires,
            l.state.as_str(), l.attempts, l.next_try, l.last_error, l.warned as i64, l.complete as i64, l.adopted as i64
        ],
    )?;
    Ok(())
}

/// Sets `path`'s mode to `mode` when it grants more (only the owner or root can: anyone else
/// gets the error).
fn make_private(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let now = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if now & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        tracing::warn!("{} was mode {now:o}; now {mode:o}", path.display());
    }
    Ok(())
}

/// A database from before tokens were kept as digests: its clear `token` column becomes a
/// digest and a sealed copy, and is dropped.
fn migrate(c: &Connection, key: &[u8; 32]) -> rusqlite::Result<()> {
    let has_clear = c
        .prepare("SELECT 1 FROM pragma_table_info('labs') WHERE name = 'token'")?
        .exists([])?;
    if !has_clear {
        return Ok(());
    }
    let has_digest = c
        .prepare("SELECT 1 FROM pragma_table_info('labs') WHERE name = 'token_digest'")?
        .exists([])?;
    c.execute_batch("BEGIN")?;
    let r = (|| {
        if !has_digest {
            c.execute_batch(
                "ALTER TABLE labs ADD COLUMN token_digest TEXT; ALTER TABLE labs ADD COLUMN token_sealed TEXT;",
            )?;
        }
        let rows: Vec<(String, String)> = c
            .prepare("SELECT name, token FROM labs")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (name, t) in rows.iter().filter(|(_, t)| !t.is_empty()) {
            c.execute(
                "UPDATE labs SET token_digest = ?2, token_sealed = ?3 WHERE name = ?1",
                params![name, digest(t), seal(key, t)],
            )?;
        }
        c.execute_batch("ALTER TABLE labs DROP COLUMN token")
    })();
    match r {
        Ok(()) => c.execute_batch("COMMIT"),
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(name: &str, token: &str) -> LabRow {
        LabRow::sample(name, token)
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("v6lab-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn tokens_are_kept_as_digests_and_found_by_digest() {
        let d = temp_dir("digest");
        let db = d.join("v6lab.db");
        let token = crate::auth::new_token("v6s_");
        {
            let s = Store::open(&db).unwrap();
            s.insert_lab(&lab("c-a", &token)).unwrap();
            s.insert_lab(&lab("c-b", "")).unwrap();
            assert_eq!(s.lab_by_token(&token).unwrap().unwrap().name, "c-a");
            assert!(s.lab_by_token("v6s_nope").unwrap().is_none());
            assert!(
                s.lab_by_token("").unwrap().is_none(),
                "a lab without a token"
            );
            // The sheet can still print it.
            assert_eq!(s.lab("c-a").unwrap().unwrap().token, token);
            // The lookup uses the index, not a scan.
            let plan: String = s
                .with(|c| {
                    c.query_row(
                        "EXPLAIN QUERY PLAN SELECT * FROM labs WHERE token_digest = ?1",
                        ["x"],
                        |r| r.get(3),
                    )
                })
                .unwrap();
            assert!(plan.contains("labs_token"), "{plan}");
        }
        // Nothing in the database files holds the token in clear.
        for f in std::fs::read_dir(&d).unwrap() {
            let p = f.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            let clear = bytes.windows(token.len()).any(|w| w == token.as_bytes());
            assert!(
                !clear || p.ends_with("tokens.key"),
                "{} holds the token",
                p.display()
            );
        }
        // Another key cannot open the sealed token (and does not pretend to).
        std::fs::remove_file(d.join("tokens.key")).unwrap();
        let s = Store::open(&db).unwrap();
        assert_eq!(s.lab("c-a").unwrap().unwrap().token, "");
        assert_eq!(s.lab_by_token(&token).unwrap().unwrap().name, "c-a");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_database_with_clear_tokens_is_migrated() {
        let d = temp_dir("migrate");
        let db = d.join("v6lab.db");
        {
            let c = Connection::open(&db).unwrap();
            c.execute_batch(
                "CREATE TABLE labs (name TEXT PRIMARY KEY, class TEXT, student TEXT, topology_name TEXT NOT NULL,
                   topology TEXT NOT NULL, token TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL,
                   state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                   next_try INTEGER NOT NULL DEFAULT 0, last_error TEXT, warned INTEGER NOT NULL DEFAULT 0,
                   complete INTEGER NOT NULL DEFAULT 0, adopted INTEGER NOT NULL DEFAULT 0);
                 INSERT INTO labs (name, topology_name, topology, token, created, expires)
                   VALUES ('old-a', 't', 'name: t', 'v6s_0123', 1, 2), ('old-b', 't', 'name: t', '', 1, 2);",
            )
            .unwrap();
        }
        let s = Store::open(&db).unwrap();
        assert_eq!(s.lab_by_token("v6s_0123").unwrap().unwrap().name, "old-a");
        assert_eq!(s.lab("old-a").unwrap().unwrap().token, "v6s_0123");
        assert_eq!(s.lab("old-b").unwrap().unwrap().token, "");
        let clear: bool = s
            .with(|c| {
                c.prepare("SELECT 1 FROM pragma_table_info('labs') WHERE name = 'token'")?
                    .exists([])
            })
            .unwrap();
        assert!(!clear, "the clear column is gone");
        drop(s);
        // Opening again changes nothing.
        let s = Store::open(&db).unwrap();
        assert_eq!(s.lab_by_token("v6s_0123").unwrap().unwrap().name, "old-a");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_state_directory_and_database_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = temp_dir("private");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = d.join("v6lab.db");
        let s = Store::open(&db).unwrap();
        s.event(1, None, None, "k", "m").unwrap();
        drop(s);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _s = Store::open(&db).unwrap();
        assert_eq!(mode(&d), 0o700);
        for f in ["v6lab.db", "v6lab.db-wal", "v6lab.db-shm", "tokens.key"] {
            let p = d.join(f);
            if p.exists() {
                assert_eq!(mode(&p), 0o600, "{f}");
            }
        }
        assert!(d.join("v6lab.db-wal").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn sessions_are_kept_as_digests_and_end_on_sign_out() {
        let s = Store::memory().unwrap();
        let row = SessionRow {
            lab: Some("c-a".into()),
            token_digest: digest("v6s_x"),
            expires: 100,
        };
        s.insert_session("v6c_secret", &row, 10).unwrap();
        assert_eq!(s.session("v6c_secret").unwrap(), Some(row.clone()));
        let stored: String = s
            .with(|c| c.query_row("SELECT digest FROM sessions", [], |r| r.get(0)))
            .unwrap();
        assert_ne!(stored, "v6c_secret");
        s.delete_session("v6c_secret").unwrap();
        assert_eq!(s.session("v6c_secret").unwrap(), None);
        // Expired sessions are forgotten when another starts.
        s.insert_session("v6c_old", &row, 10).unwrap();
        s.insert_session(
            "v6c_new",
            &SessionRow {
                expires: 500,
                ..row.clone()
            },
            200,
        )
        .unwrap();
        assert_eq!(s.session("v6c_old").unwrap(), None);
        assert!(s.session("v6c_new").unwrap().is_some());
        // Opening a link in a loop keeps only the newest sessions of that lab.
        let admin = SessionRow {
            lab: None,
            token_digest: digest("v6a_x"),
            expires: 500,
        };
        s.insert_session("v6c_admin", &admin, 200).unwrap();
        for i in 0..1000 {
            s.insert_session(
                &format!("v6c_{i}"),
                &SessionRow {
                    expires: 500,
                    ..row.clone()
                },
                200,
            )
            .unwrap();
        }
        let n: i64 = s
            .with(|c| c.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, SESSIONS_KEPT + 1);
        assert!(s.session("v6c_999").unwrap().is_some());
        assert!(s.session("v6c_0").unwrap().is_none());
        assert!(
            s.session("v6c_admin").unwrap().is_some(),
            "other sessions stay"
        );
    }

    #[test]
    fn events_are_pruned_to_the_newest() {
        let s = Store::memory().unwrap();
        s.with(|c| {
            c.execute_batch(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
                 INSERT INTO events (id, ts, kind, message) SELECT i, 0, 'k', 'm' FROM n;",
                EVENTS_KEPT + 5000
            ))
        })
        .unwrap();
        for _ in 0..100 {
            s.event(0, None, None, "k", "m").unwrap();
        }
        let count: i64 = s
            .with(|c| c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)))
            .unwrap();
        println!("events kept: {count} (at most {} + 100)", EVENTS_KEPT);
        assert!(count <= EVENTS_KEPT + 100, "{count}");
    }
}
