//! The page: its state and what it does (`ui`, `sharing`, `persist`, `models`, `files`, `bridge`
//! to the worker) and the views that draw it (`view`).

pub(crate) mod bridge;
pub(crate) mod files;
pub(crate) mod models;
pub(crate) mod persist;
pub(crate) mod sharing;
pub(crate) mod storage;
pub(crate) mod ui;
pub(crate) mod view;
