//! What happens to a message: its state with the history of changes, attempts, the last error,
//! the connector that took it and the remote ids (one per part) receipts are matched by.

use super::{Millis, State};
use serde::{Deserialize, Serialize};

/// One entry of the state history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub state: State,
    pub at: Millis,
}

/// The last error a message met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Stable, bounded code (also a metric label).
    pub code: String,
    pub message: String,
}

/// The delivery record of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub state: State,
    pub history: Vec<Transition>,
    pub attempts: u32,
    pub error: Option<ErrorInfo>,
    /// The connector it went out on (or came in from).
    pub connector: Option<String>,
    pub remote_ids: Vec<String>,
    /// Receipt state per part of a multipart message (same order as `remote_ids`).
    pub part_states: Vec<State>,
    /// When the schedule entry of a pending message is due.
    pub due_at: Millis,
}

impl Delivery {
    /// A delivery record starting in `state` at `at`.
    pub fn new(state: State, at: Millis, due_at: Millis) -> Delivery {
        // Room for the usual life (queued, sending, submitted, final): allocated once.
        let mut history = Vec::with_capacity(4);
        history.push(Transition { state, at });
        Delivery {
            state,
            history,
            attempts: 0,
            error: None,
            connector: None,
            remote_ids: Vec::new(),
            part_states: Vec::new(),
            due_at,
        }
    }
}
