//! The HTTP API's requests and responses, as types: the server (`api`) answers with them and the
//! CLI client (`v6lab class ...`, `events`, `check --class`) reads them, so both sides agree.

use crate::store::{EventRow, LabRow, LabState, ProgressRow};
use serde::{Deserialize, Serialize};

/// Every refusal and failure: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `POST /api/classes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewClass {
    /// Class name (DNS-safe); default: the topology's name and a number.
    #[serde(default)]
    pub name: Option<String>,
    /// The topology, as YAML text.
    pub topology: String,
    /// File name of the topology, for messages.
    #[serde(default)]
    pub topology_file: Option<String>,
    /// Number of students (labs named student-01...), or
    #[serde(default)]
    pub students: Option<usize>,
    /// student names (one lab each).
    #[serde(default)]
    pub roster: Option<Vec<String>>,
    /// `3h`, `90m`; default: the topology's lifetime.
    #[serde(default)]
    pub lifetime: Option<String>,
}

/// `POST /api/labs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewLab {
    pub name: String,
    pub topology: String,
    #[serde(default)]
    pub topology_file: Option<String>,
    #[serde(default)]
    pub lifetime: Option<String>,
    #[serde(default)]
    pub complete: bool,
}

/// `POST .../extend`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extend {
    /// Add this much time: `1h`, `30m`.
    pub by: String,
}

/// The answer to an extension: the new expiry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Expiry {
    pub name: String,
    pub expires: i64,
}

/// The answer to a deletion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: String,
}

/// A node of a lab, as a student sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub role: String,
}

/// An exercise of a lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExerciseInfo {
    pub id: String,
    pub title: String,
    pub instructions: String,
}

/// A lab. `token` only for the administrator; `nodes`, `exercises` and `seconds_left` only
/// where one lab is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lab {
    pub name: String,
    pub class: Option<String>,
    pub student: Option<String>,
    pub topology_name: String,
    pub created: i64,
    pub expires: i64,
    pub state: LabState,
    pub attempts: i64,
    pub next_try: i64,
    pub last_error: Option<String>,
    pub warned: bool,
    pub complete: bool,
    pub adopted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exercises: Option<Vec<ExerciseInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_left: Option<i64>,
}

impl Lab {
    pub fn of(l: &LabRow, with_token: bool) -> Lab {
        Lab {
            name: l.name.clone(),
            class: l.class.clone(),
            student: l.student.clone(),
            topology_name: l.topology_name.clone(),
            created: l.created,
            expires: l.expires,
            state: l.state,
            attempts: l.attempts,
            next_try: l.next_try,
            last_error: l.last_error.clone(),
            warned: l.warned,
            complete: l.complete,
            adopted: l.adopted,
            token: (with_token && !l.token.is_empty()).then(|| l.token.clone()),
            nodes: None,
            exercises: None,
            seconds_left: None,
        }
    }
}

/// A class with its labs (and their tokens: the administrator's view).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Class {
    pub name: String,
    pub topology: String,
    pub created: i64,
    pub expires: i64,
    pub labs: Vec<Lab>,
}

/// A line of `GET /api/classes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassSummary {
    pub name: String,
    pub topology: String,
    pub created: i64,
    pub expires: i64,
    pub labs: usize,
    pub ready: usize,
    pub failed: usize,
}

/// A student's line of a class's progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudentProgress {
    pub lab: String,
    pub student: Option<String>,
    pub state: LabState,
    pub exercises: Vec<ProgressRow>,
}

/// `GET /api/classes/{class}/progress`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassProgress {
    pub class: String,
    pub exercises: Vec<String>,
    pub students: Vec<StudentProgress>,
}

/// `GET /api/labs/{lab}/checks`: the last recorded results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabProgress {
    pub lab: String,
    pub exercises: Vec<ProgressRow>,
}

/// One check of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckOutcome {
    pub node: String,
    pub title: String,
    pub passed: bool,
    pub detail: String,
    pub message: Option<String>,
    pub attempts: u32,
    pub elapsed_ms: u64,
}

/// One exercise of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExerciseOutcome {
    pub id: String,
    pub title: String,
    pub passed: bool,
    pub checks: Vec<CheckOutcome>,
}

impl From<v6lab_runtime::exercise::ExerciseResult> for ExerciseOutcome {
    fn from(e: v6lab_runtime::exercise::ExerciseResult) -> Self {
        ExerciseOutcome {
            id: e.id,
            title: e.title,
            passed: e.passed,
            checks: e
                .checks
                .into_iter()
                .map(|c| CheckOutcome {
                    node: c.node,
                    title: c.title,
                    passed: c.passed,
                    detail: c.detail,
                    message: c.message,
                    attempts: c.attempts,
                    elapsed_ms: c.elapsed_ms,
                })
                .collect(),
        }
    }
}

/// `POST /api/labs/{lab}/checks`: a run now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRun {
    pub lab: String,
    pub exercises: Vec<ExerciseOutcome>,
}

/// `GET /api/events` (a list of these; with `follow`, one per server-sent event).
pub type Event = EventRow;

/// `POST /api/admin/rotate-token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_shows_its_token_to_the_administrator_only() {
        let row = LabRow {
            state: LabState::Ready,
            ..LabRow::sample("c-a", "v6s_x")
        };
        let admin = serde_json::to_value(Lab::of(&row, true)).unwrap();
        assert_eq!(admin["token"], "v6s_x");
        assert_eq!(admin["state"], "ready");
        let student = serde_json::to_string(&Lab::of(&row, false)).unwrap();
        assert!(!student.contains("v6s_x") && !student.contains("token"));
        let back: Lab = serde_json::from_value(admin).unwrap();
        assert_eq!(back.token.as_deref(), Some("v6s_x"));
    }
}
