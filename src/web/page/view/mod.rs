//! The page's components, each drawing one part of the page's state.

pub(crate) mod collapsible;
pub(crate) mod compare;
pub(crate) mod components;
pub(crate) mod controls;
pub(crate) mod editor;
pub(crate) mod embed;
pub(crate) mod examples;
pub(crate) mod export;
pub(crate) mod faithfulness;
pub(crate) mod heatmap;
pub(crate) mod layout;
pub(crate) mod matrix;
pub(crate) mod model_panel;
pub(crate) mod panels;
pub(crate) mod report_card;
pub(crate) mod share;
pub(crate) mod targets;
