//! What every streaming source hands to the pipeline.

use std::sync::Arc;

use schema::{Ack, RawRecord, Source};

/// Records read together from one stream of one source.
///
/// `stream` identifies the stream whose records must be normalized in
/// order with shared state (format detection, multi-line grouping): one
/// file (by identity, so a renamed file keeps its stream), one TCP
/// connection, one HTTP request. Batches of one stream arrive in order.
#[derive(Debug)]
pub struct SourceBatch {
    /// The configured source's name (`[sources.NAME]`), for metrics.
    pub source_name: Arc<str>,
    /// Where the records come from; `records[i].source` is the same.
    pub source: Arc<Source>,
    pub stream: u64,
    pub records: Vec<RawRecord>,
    /// Completed by the sinks; the source advances its checkpoint (or
    /// answers its client) when it reports delivery. [`Ack::none`] for
    /// sources that cannot resend.
    pub ack: Ack,
    /// No more records will come on this stream (file deleted and read to
    /// its end, connection closed): the pipeline closes any record held
    /// open for continuation lines and forgets the stream.
    pub end_of_stream: bool,
}
