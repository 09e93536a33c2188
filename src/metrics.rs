//! Metric names in one place (`postern_<area>_<name>_<unit>`), label keys, and the Prometheus
//! recorder. Labels are bounded: connector, shard, state, code, outcome — never a number or id.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const API_ACCEPTED_TOTAL: &str = "postern_api_accepted_total";
pub const API_REJECTED_TOTAL: &str = "postern_api_rejected_total";
pub const API_REQUESTS_TOTAL: &str = "postern_api_requests_total";
pub const MESSAGE_TRANSITIONS_TOTAL: &str = "postern_message_transitions_total";
pub const OUTBOX_DEPTH: &str = "postern_outbox_depth";
pub const OUTBOX_READY: &str = "postern_outbox_ready";
/// Failed outbox writes, by `kind` (no_space, stopped, io, other).
pub const OUTBOX_WRITE_ERRORS_TOTAL: &str = "postern_outbox_write_errors_total";
/// 1 while the outbox can write, 0 while it refuses writes (e.g. after a full disk).
pub const OUTBOX_WRITABLE: &str = "postern_outbox_writable";
/// Attempts to get a failed outbox writing again, by `outcome` (ok, failed).
pub const OUTBOX_RECOVERY_ATTEMPTS_TOTAL: &str = "postern_outbox_recovery_attempts_total";
/// State changes (turns of a shard's state actor) held because the store could not write them;
/// each is written again once it can.
pub const STATE_TURNS_HELD_TOTAL: &str = "postern_outbox_state_turns_held_total";
pub const OUTBOX_COMMIT_SECONDS: &str = "postern_outbox_commit_seconds";
pub const OUTBOX_COMMIT_BATCH_SIZE: &str = "postern_outbox_commit_batch_messages";
pub const CONNECTOR_SUBMITTED_TOTAL: &str = "postern_connector_submitted_total";
pub const CONNECTOR_FAILED_TOTAL: &str = "postern_connector_failed_total";
pub const CONNECTOR_THROTTLED_TOTAL: &str = "postern_connector_throttled_total";
pub const CONNECTOR_INFLIGHT: &str = "postern_connector_inflight";
pub const CONNECTOR_UP: &str = "postern_connector_up";
/// 1 while a link is up but its full window has not moved for a while.
pub const CONNECTOR_DEGRADED: &str = "postern_connector_degraded";
pub const RECEIPTS_TOTAL: &str = "postern_receipts_total";
pub const RECEIPTS_UNKNOWN_TOTAL: &str = "postern_receipts_unknown_total";
pub const ACCEPT_TO_SUBMIT_SECONDS: &str = "postern_message_accept_to_submit_seconds";
pub const SUBMIT_TO_FINAL_SECONDS: &str = "postern_message_submit_to_final_seconds";
pub const CALLBACKS_TOTAL: &str = "postern_callbacks_total";
pub const INBOUND_TOTAL: &str = "postern_inbound_received_total";
/// Inbound messages and MO parts a peer sent again (after a lost ack), stored once.
pub const INBOUND_DUPLICATES_TOTAL: &str = "postern_inbound_duplicates_total";
/// Received messages an inbound route matched but could not forward (see `hub::forward`).
pub const FORWARD_FAILED_TOTAL: &str = "postern_forward_failed_total";
/// Forwarded messages stored, by route.
pub const FORWARDED_TOTAL: &str = "postern_forwarded_total";
/// SMPP sessions closed because a frame could not be decoded.
pub const SMPP_FRAME_ERRORS_TOTAL: &str = "postern_smpp_frame_errors_total";

pub const L_SHARD: &str = "shard";
pub const L_CONNECTOR: &str = "connector";
pub const L_STATE: &str = "state";
pub const L_CODE: &str = "code";
pub const L_OUTCOME: &str = "outcome";
pub const L_ROUTE: &str = "route";
pub const L_KIND: &str = "kind";

/// Series that must be present in `/metrics` once the gateway is up (checked by a test).
pub const REQUIRED: &[&str] = &[
    API_ACCEPTED_TOTAL,
    MESSAGE_TRANSITIONS_TOTAL,
    OUTBOX_DEPTH,
    OUTBOX_COMMIT_SECONDS,
    OUTBOX_COMMIT_BATCH_SIZE,
    CONNECTOR_SUBMITTED_TOTAL,
    CONNECTOR_INFLIGHT,
    CONNECTOR_UP,
    ACCEPT_TO_SUBMIT_SECONDS,
    SUBMIT_TO_FINAL_SECONDS,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide Prometheus recorder once; later calls return the same handle.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 300.0,
            ];
            let sizes = [
                1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
            ];
            let b = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_messages".into()), &sizes)
                });
            match b.and_then(|b| b.install_recorder().map_err(Into::into)) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

/// Handles of the metrics touched for every message, registered once: building a key and
/// looking it up in the registry on each call costs more than the increment.
pub struct Hot {
    pub accepted: metrics::Counter,
    pub requests: metrics::Counter,
    /// By `State` discriminant order (`State::ALL`).
    pub transitions: Vec<metrics::Counter>,
    pub receipts: Vec<metrics::Counter>,
    pub accept_to_submit: metrics::Histogram,
    pub submit_to_final: metrics::Histogram,
}

static HOT: OnceLock<Hot> = OnceLock::new();

/// The hot-path handles (installs the recorder first, so the handles are live).
pub fn hot() -> &'static Hot {
    HOT.get_or_init(|| {
        install();
        use crate::model::State;
        Hot {
            accepted: metrics::counter!(API_ACCEPTED_TOTAL),
            requests: metrics::counter!(API_REQUESTS_TOTAL),
            transitions: State::ALL
                .iter()
                .map(|s| metrics::counter!(MESSAGE_TRANSITIONS_TOTAL, L_STATE => s.as_str()))
                .collect(),
            receipts: State::ALL
                .iter()
                .map(|s| metrics::counter!(RECEIPTS_TOTAL, L_STATE => s.as_str()))
                .collect(),
            accept_to_submit: metrics::histogram!(ACCEPT_TO_SUBMIT_SECONDS),
            submit_to_final: metrics::histogram!(SUBMIT_TO_FINAL_SECONDS),
        }
    })
}

/// Render the current metrics in the Prometheus text format.
pub fn render() -> String {
    install().map(|h| h.render()).unwrap_or_default()
}
