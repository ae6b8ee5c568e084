//! The projector of `--backend aws` on one machine, fed as the projector
//! Lambda is: it reads the records table's stream (the Lambda's event
//! source mapping), polls the SQS command queue, and sweeps on a timer (the
//! Lambda's schedule). All paths call the projector's one
//! [`ProjectorService`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openfloor_aws::queue::{Message, Queue};
use openfloor_aws::stream::StreamReader;
use openfloor_domain::ids::EventId;
use openfloor_projector::service::{Incoming, ProjectorService};
use openfloor_store::{cause_chain, Touched};
use tokio_util::sync::CancellationToken;

/// How long the stream reader rests when the stream had nothing new. Lambda
/// polls a stream shard four times a second; so does this.
const STREAM_REST: Duration = Duration::from_millis(250);

/// Reads the records stream until `stop` and projects each event with new
/// records. An event whose projection failed is tried again on the next
/// round (the stream has moved on; the Lambda would be redelivered the
/// same changes instead). A read in flight is never abandoned: the stop is
/// seen between reads.
pub async fn run_stream_reader(
    service: Arc<ProjectorService>,
    mut reader: StreamReader,
    stop: CancellationToken,
) {
    let mut retry: BTreeMap<EventId, Touched> = BTreeMap::new();
    while !stop.is_cancelled() {
        let mut changes: Vec<Touched> = std::mem::take(&mut retry).into_values().collect();
        match reader.poll().await {
            Ok(read) => changes.extend(read),
            Err(error) => tracing::warn!(
                error = %cause_chain(&error),
                "reading the records stream failed; retrying"
            ),
        }
        let quiet = changes.is_empty();
        for failed in service.handle_touched(&changes).await {
            retry.insert(failed.event, failed);
        }
        if quiet || !retry.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(STREAM_REST) => {}
                () = stop.cancelled() => {}
            }
        }
    }
}

/// How long one receive waits for messages (an SQS long poll). Also the
/// longest a stop or a due sweep waits for the poll in flight.
const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// Polls `queue` and handles what arrives until `stop`, sweeping every
/// `sweep_every`. A receive is never abandoned mid-flight: a message SQS
/// hands to a cancelled request stays hidden for the whole visibility
/// timeout, so sweeps and stops wait for the poll in flight to return.
pub async fn run_poller(
    service: Arc<ProjectorService>,
    queue: Queue,
    sweep_every: Duration,
    stop: CancellationToken,
) {
    let mut next_sweep = tokio::time::Instant::now();
    while !stop.is_cancelled() {
        if tokio::time::Instant::now() >= next_sweep {
            if let Err(error) = service.sweep().await {
                tracing::warn!(error = %cause_chain(&error), "sweep failed");
            }
            next_sweep = tokio::time::Instant::now() + sweep_every;
        }
        match queue.receive(RECEIVE_WAIT).await {
            Ok(messages) => handle_received(&service, &queue, &messages).await,
            Err(error) => {
                tracing::warn!(
                    error = %cause_chain(&error),
                    "receiving from the projector queue failed; retrying"
                );
                tokio::select! {
                    () = tokio::time::sleep(RECEIVE_WAIT) => {}
                    () = stop.cancelled() => {}
                }
            }
        }
    }
}

/// Handles polled messages: deletes the handled ones, and makes failed ones
/// visible again shortly (after [`openfloor_aws::queue::MAX_RECEIVES`] receives SQS
/// moves them to the dead-letter queue).
pub async fn handle_received(service: &ProjectorService, queue: &Queue, messages: &[Message]) {
    if messages.is_empty() {
        return;
    }
    let failed: BTreeSet<String> = service
        .handle(&incoming(messages))
        .await
        .into_iter()
        .collect();
    let done: Vec<&Message> = messages
        .iter()
        .filter(|m| !failed.contains(&m.id))
        .collect();
    if let Err(error) = queue.delete(&done).await {
        tracing::warn!(
            %error,
            "deleting handled messages failed; they will be handled again (harmless)"
        );
    }
    for m in messages.iter().filter(|m| failed.contains(&m.id)) {
        let _ = queue.retry_later(m, Duration::from_secs(1)).await;
    }
}

/// Polled messages as the projector service takes them.
pub fn incoming(messages: &[Message]) -> Vec<Incoming> {
    messages
        .iter()
        .map(|m| Incoming {
            id: m.id.clone(),
            body: m.body.clone(),
            sent_at: m.sent_at,
            traceparent: m.traceparent.clone(),
        })
        .collect()
}
