//! Process, fd and stream state: what turns kernel facts ("pid 9 wrote 40 bytes to fd 5")
//! into enriched events ("curl, child of bash in container abc, sent 40 bytes to
//! 127.0.0.1:443").

pub mod events;
pub mod names;
pub mod process;
pub mod tls;
pub mod tracker;
pub mod workspace;

pub use tracker::{syscall_name, Tracker};
