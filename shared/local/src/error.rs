//! The crate's error type, and how it maps onto [`PortError`] at the port
//! boundary so callers never see a redb type.

use std::path::PathBuf;

use wca_core::PortError;

/// What can go wrong in the embedded store.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The directory meant to hold the store file could not be created.
    #[error("creating the store directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The store file could not be opened or created (held by another
    /// process, unreadable, or written by an incompatible redb version).
    #[error("opening the store file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: redb::DatabaseError,
    },
    /// A read or write on the open store failed. (Boxed: redb's error is
    /// large, and this one travels through every `Result` of the crate.)
    #[error("store operation failed: {0}")]
    Storage(#[source] Box<redb::Error>),
    /// The store file is damaged: empty, cut short, or with pages redb
    /// cannot read. Nothing is started over it.
    #[error(
        "the store file {path} is corrupt: {why}. Move it aside and start again, or restore a backup; wca will not start over it"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A stored value could not be decoded.
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    /// The store file could not be made readable by its owner only.
    #[error("making {path} private: {source}")]
    Private {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A data file (orders, profiles, tickets) could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of a data file is not what it should be.
    #[error("{origin}:{line}: {reason}")]
    BadLine {
        /// The file (or other source) it came from.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting of an adapter is not usable (a shop API URL that is not
    /// http or https, a zero timeout).
    #[error("{0}")]
    Config(String),
    /// The background thread running a store operation panicked or was
    /// cancelled (the runtime is shutting down).
    #[error("store task did not finish: {0}")]
    Interrupted(String),
}

// Every step of a transaction has its own redb error type; they all fold
// into `redb::Error`, so closures can use `?` on any of them.
macro_rules! from_redb {
    ($($ty:ty),+ $(,)?) => {
        $(impl From<$ty> for LocalError {
            fn from(err: $ty) -> Self {
                Self::Storage(Box::new(err.into()))
            }
        })+
    };
}

from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
);

impl From<LocalError> for PortError {
    fn from(err: LocalError) -> Self {
        match err {
            LocalError::Storage(err) => match *err {
                redb::Error::Corrupted(msg) => PortError::Corrupt(msg),
                redb::Error::ValueTooLarge(len) => {
                    PortError::Rejected(format!("value of {len} bytes is too large"))
                }
                other => PortError::Unavailable(format!("store operation failed: {other}")),
            },
            LocalError::Corrupt(msg) => PortError::Corrupt(msg),
            damaged @ LocalError::Damaged { .. } => PortError::Corrupt(damaged.to_string()),
            other => PortError::Unavailable(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redb_corruption_surfaces_as_corrupt_and_io_trouble_as_unavailable() {
        let corrupt = LocalError::from(redb::Error::Corrupted("bad page".into()));
        assert!(matches!(PortError::from(corrupt), PortError::Corrupt(_)));
        let io = LocalError::from(redb::Error::Io(std::io::Error::other("disk gone")));
        assert!(matches!(PortError::from(io), PortError::Unavailable(_)));
        let big = LocalError::from(redb::Error::ValueTooLarge(1 << 40));
        assert!(matches!(PortError::from(big), PortError::Rejected(_)));
    }
}
