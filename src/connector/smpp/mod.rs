//! SMPP: delivery-receipt parsing and the PDU field view (pure); the carrier client, the server
//! for downstream ESMEs and the SMSC simulator build on rusmpp 0.4.

pub mod client;
pub mod dlr;
pub mod pdu_view;
pub mod server;
pub mod sim;
pub mod tls;

use futures::{SinkExt, StreamExt};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::Command;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

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
        while let Some(cmd) = rx.recv().await {
            if sink.send(cmd).await.is_err() {
                break;
            }
        }
    });
    (reader, tx, writer)
}
