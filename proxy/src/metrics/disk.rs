//! The disk tier (`--cache-dir`): whether it serves, what it holds, its hits, writes, evictions and problems. The
//! memory tier's are [`super::memory`].

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Registry};

use super::{counter, counter_vec, float_gauge, gauge};

/// `dime_cache_disk_*` and `dime_cache_index_load_seconds`.
#[derive(Debug)]
pub struct DiskMetrics {
    pub enabled: IntGauge,
    pub budget_bytes: IntGauge,
    pub stored_bytes: IntGauge,
    pub objects: IntGauge,
    pub hits: IntCounter,
    pub writes: IntCounter,
    pub evictions: IntCounter,
    errors: IntCounterVec,
    pub index_load_seconds: Gauge,
}

impl DiskMetrics {
    pub(super) fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        let m = DiskMetrics {
            enabled: gauge(r, "dime_cache_disk_enabled", "1 while the disk tier serves and stores, 0 when off.")?,
            budget_bytes: gauge(r, "dime_cache_disk_budget_bytes", "The disk tier's byte budget (--cache-disk-size).")?,
            stored_bytes: gauge(r, "dime_cache_disk_stored_bytes", "Bytes of the disk tier's object files.")?,
            objects: gauge(r, "dime_cache_disk_objects", "Objects in the disk tier.")?,
            hits: counter(r, "dime_cache_disk_hits_total", "Memory misses answered from the disk tier.")?,
            writes: counter(r, "dime_cache_disk_writes_total", "Objects written to the disk tier.")?,
            evictions: counter(
                r,
                "dime_cache_disk_evictions_total",
                "Objects evicted from the disk tier to stay within its budget.",
            )?,
            errors: counter_vec(
                r,
                "dime_cache_disk_errors_total",
                "Disk tier problems, by kind: truncated, checksum, garbled (damaged files, dropped and refetched), io, full, read_only (writes), busy (too many writes waiting; kept in memory only), unavailable (--cache-dir unusable at start).",
                &["kind"],
            )?,
            index_load_seconds: float_gauge(
                r,
                "dime_cache_index_load_seconds",
                "How long rebuilding the disk tier's index from its files took at start.",
            )?,
        };
        // Shown at 0 from the start, so an alert on their rate has a series before the first problem.
        for kind in DiskError::ALL {
            m.errors(kind);
        }
        Ok(m)
    }

    /// `dime_cache_disk_errors_total{kind}`.
    pub fn errors(&self, kind: DiskError) -> IntCounter {
        self.errors.with_label_values(&[kind.as_str()])
    }
}

/// A disk tier problem: the `kind` of `dime_cache_disk_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskError {
    /// A file shorter than its header says.
    Truncated,
    /// A file whose checksum does not match.
    Checksum,
    /// A file that is not a Dime object, or not the one its name says.
    Garbled,
    /// Any other I/O error.
    Io,
    /// No space left (ENOSPC, EDQUOT): the tier turns off.
    Full,
    /// The directory refuses writes (EROFS, EACCES): the tier turns off.
    ReadOnly,
    /// Too many writes waiting: the object is kept in memory only.
    Busy,
    /// `--cache-dir` cannot be used at start.
    Unavailable,
}

impl DiskError {
    pub const ALL: [DiskError; 8] = [
        DiskError::Truncated,
        DiskError::Checksum,
        DiskError::Garbled,
        DiskError::Io,
        DiskError::Full,
        DiskError::ReadOnly,
        DiskError::Busy,
        DiskError::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DiskError::Truncated => "truncated",
            DiskError::Checksum => "checksum",
            DiskError::Garbled => "garbled",
            DiskError::Io => "io",
            DiskError::Full => "full",
            DiskError::ReadOnly => "read_only",
            DiskError::Busy => "busy",
            DiskError::Unavailable => "unavailable",
        }
    }
}
