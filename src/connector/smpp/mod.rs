//! SMPP: delivery-receipt parsing and the PDU field view (pure); the carrier client, the server
//! for downstream ESMEs and the SMSC simulator build on rusmpp 0.4.

pub mod client;
pub mod config;
pub mod coalesce;
pub mod dlr;
pub mod pdu_view;
pub mod sm_fields;
pub mod server;
mod session;
mod submit;

use futures::{SinkExt, StreamExt};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::Command;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

/// A C-octet string field from text (empty if it does not fit the field).
pub(crate) fn c<const MIN: usize, const MAX: usize>(s: &str) -> rusmpp::types::COctetString<MIN, MAX> {
    rusmpp::types::COctetString::from_string(s.to_string()).unwrap_or_else(|_| rusmpp::types::COctetString::empty())
}

/// A delivery receipt as `deliver_sm` (esm_class 0x04): the receipt text in `short_message`
/// when given, and the `receipted_message_id`/`message_state` TLVs when a state is given. Used
/// by the server (receipts to ESMEs) and the simulator (receipts to Postern).
pub fn receipt_deliver_sm(id: &str, src: &str, dst: &str, text: Option<Vec<u8>>, state: Option<rusmpp::values::MessageState>) -> rusmpp::pdus::DeliverSm {
    use rusmpp::tlvs::MessageDeliveryRequestTlvValue as Tlv;
    use rusmpp::values::{DataCoding, EsmClass, Npi, Ton};
    let mut b = rusmpp::pdus::DeliverSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr_npi(Npi::Isdn)
        .source_addr(c(src))
        .dest_addr_ton(Ton::Unknown)
        .dest_addr_npi(Npi::Unknown)
        .destination_addr(c(dst))
        .esm_class(EsmClass::from(0x04u8))
        .data_coding(DataCoding::from(0u8));
    if let Some(t) = text {
        b = b.short_message(rusmpp::types::OctetString::from_vec(t).unwrap_or_else(|_| rusmpp::types::OctetString::empty()));
    }
    if let Some(st) = state {
        b = b.push_tlv(Tlv::ReceiptedMessageId(c(id))).push_tlv(Tlv::MessageState(st));
    }
    b.build()
}

/// The reading half of an SMPP session (decoded commands).
pub type CommandReader<S> = futures::stream::SplitStream<Framed<S, CommandCodec>>;

/// Split an SMPP stream: commands are read from the returned reader; commands sent on the
/// returned channel are written by a task (so responses, receipts and MO can come from any
/// task). The task ends when every sender is dropped.
pub fn split_session<S>(
    stream: S,
) -> (
    CommandReader<S>,
    mpsc::UnboundedSender<Command>,
    tokio::task::JoinHandle<()>,
)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let framed = Framed::new(stream, CommandCodec::new().with_max_length(4096));
    let (mut sink, reader) = framed.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
    let writer = tokio::spawn(async move {
        // Everything queued goes out with one write: a flush (a syscall) per response was an
        // eighth of the CPU of SMPP in → SMPP out.
        let mut queued = Vec::with_capacity(64);
        while rx.recv_many(&mut queued, 256).await > 0 {
            for cmd in queued.drain(..) {
                if sink.feed(cmd).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    (reader, tx, writer)
}
