//! PostgreSQL: `pg_dump` backups counted in the dump's own snapshot, restores into a
//! throwaway cluster or a scratch database, and `SqlConn` verification.

pub mod basebackup;
pub mod bin;
pub mod catalog;
pub mod cluster;
pub mod confine;
pub mod conn;
pub mod content;
pub mod copy;
pub mod dump;
mod engine;
pub mod pgbackrest;
pub mod physical;
pub mod recovery;
pub mod restore;
pub mod scratch;
pub mod url;
pub mod zstd;

pub use conn::PgConn;
pub use engine::Postgres;
