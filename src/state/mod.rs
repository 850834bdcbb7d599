//! The page's state, native so that it is tested and fuzzed natively: every choice on the page
//! (`settings`), the link codec (`link`), what links and exports hold (`shared`), and the one
//! check every result passes before a view shows it (`result`), with what the views compute from
//! it (`view`, `colour`, `export`). Nothing here touches the browser; `web` renders and persists
//! these values.
//!
//! This is the validation boundary for everything from outside the page's own code: a link's
//! fragment, query parameters, an imported file, local storage. They are parsed into the types
//! here, whose invariants the views rely on.

pub mod backend;
pub mod colour;
pub mod default_model;
pub mod download;
pub mod editor_map;
pub mod embed_snippet;
pub mod examples;
pub mod export;
pub mod format;
pub mod link;
pub mod report_card;
pub mod result;
pub mod run_queue;
pub mod settings;
pub mod shared;
pub mod view;
