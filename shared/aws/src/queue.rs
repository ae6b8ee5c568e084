//! The SQS projector queue: commands for the projector that are not news
//! of a record (a verify, a sweep on the schedule, a re-projection an
//! operator asks for). News of records travels on the records table's
//! stream ([`crate::stream`]), which nothing can forget to send.
//!
//! A message asks for work on records that are already the truth: a lost,
//! duplicated or reordered message delays that work, never corrupts a view.
//! Poison messages go to the dead-letter queue after [`MAX_RECEIVES`]
//! receives.

use std::time::Duration;

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use openfloor_store::{StoreError, StoreResult};

use crate::{build_error, sdk_error, AwsSettings};

/// SQS takes at most 10 entries per batch call (send, delete); the stand-in
/// does not enforce it, so this code does.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Receives before a message goes to the dead-letter queue.
pub const MAX_RECEIVES: u32 = 3;
/// The message attribute carrying the sender's trace context (W3C), so the
/// projector's work links back to whoever asked for it.
pub const TRACEPARENT: &str = "traceparent";

/// The commands the queue carries (defined with the projector's trigger
/// role, so the projector need not know about SQS).
pub use openfloor_store::ProjectorCommand as Command;

/// Creates the queue and its dead-letter queue if missing.
pub async fn create_queues(client: &Client, settings: &AwsSettings) -> StoreResult<()> {
    let dlq = client
        .create_queue()
        .queue_name(settings.dlq_name())
        .send()
        .await
        .map_err(|e| sdk_error(format!("creating queue {}", settings.dlq_name()), e))?;
    let dlq_url = dlq.queue_url().unwrap_or_default().to_owned();
    let attributes = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sdk_error(format!("reading the ARN of queue {dlq_url}"), e))?;
    let dlq_arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default();
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": MAX_RECEIVES.to_string(),
    });
    client
        .create_queue()
        .queue_name(&settings.queue_name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        // Six times the projector's own timeout (AWS's guidance for Lambda).
        .attributes(QueueAttributeName::VisibilityTimeout, "60")
        .send()
        .await
        .map_err(|e| sdk_error(format!("creating queue {}", settings.queue_name), e))?;
    Ok(())
}

/// The projector queue, resolved to its URL.
#[derive(Clone)]
pub struct Queue {
    pub client: Client,
    pub url: String,
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub receipt: String,
    /// When SQS accepted it, in milliseconds (its age tells how far behind
    /// the projector's queue is).
    pub sent_at: Option<u64>,
    /// The sender's trace context ([`TRACEPARENT`]), if it was traced.
    pub traceparent: Option<String>,
}

impl Queue {
    pub async fn open(client: Client, name: &str) -> StoreResult<Self> {
        let url = client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| sdk_error(format!("finding queue {name}"), e))?
            .queue_url()
            .unwrap_or_default()
            .to_owned();
        Ok(Self { client, url })
    }

    /// Sends commands, at most [`MAX_BATCH_ENTRIES`] per call, each with
    /// the current trace context when there is one.
    pub async fn send(&self, commands: &[Command]) -> StoreResult<()> {
        let traced = openfloor_telemetry::current_traceparent()
            .map(|traceparent| {
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(traceparent)
                    .build()
                    .map_err(|e| build_error("a trace context attribute", e))
            })
            .transpose()?;
        for chunk in commands.chunks(MAX_BATCH_ENTRIES) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(c).expect("commands serialize"))
                        .set_message_attributes(
                            traced
                                .clone()
                                .map(|value| [(TRACEPARENT.to_owned(), value)].into()),
                        )
                        .build()
                        .map_err(|e| build_error("a command message", e))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sdk_error(format!("sending {} commands", chunk.len()), e))?;
            if !out.failed().is_empty() {
                return Err(StoreError::unavailable_msg(format!(
                    "{} commands were not queued",
                    out.failed().len()
                )));
            }
        }
        Ok(())
    }

    /// Long-polls for up to 10 messages.
    pub async fn receive(&self, wait: Duration) -> StoreResult<Vec<Message>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(MAX_BATCH_ENTRIES as i32)
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20).min(20))
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names(TRACEPARENT)
            .send()
            .await
            .map_err(|e| sdk_error("receiving messages", e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| Message {
                id: m.message_id().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                receipt: m.receipt_handle().unwrap_or_default().to_owned(),
                sent_at: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|at| at.parse().ok()),
                traceparent: m
                    .message_attributes()
                    .and_then(|a| a.get(TRACEPARENT))
                    .and_then(MessageAttributeValue::string_value)
                    .map(str::to_owned),
            })
            .collect())
    }

    /// Deletes handled messages, at most [`MAX_BATCH_ENTRIES`] per call.
    pub async fn delete(&self, messages: &[&Message]) -> StoreResult<()> {
        for chunk in messages.chunks(MAX_BATCH_ENTRIES) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt)
                        .build()
                        .map_err(|e| build_error("a message deletion", e))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            self.client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sdk_error(format!("deleting {} messages", chunk.len()), e))?;
        }
        Ok(())
    }

    /// Makes a failed message visible again after `after` (its retry).
    pub async fn retry_later(&self, message: &Message, after: Duration) -> StoreResult<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&message.receipt)
            .visibility_timeout(i32::try_from(after.as_secs()).unwrap_or(0))
            .send()
            .await
            .map_err(|e| sdk_error(format!("delaying the retry of message {}", message.id), e))?;
        Ok(())
    }
}
