//! The page's own addresses, read by the page and by the crash notice: where it is served from,
//! the embed view's page, and whether another address is on this origin.

use leptos::prelude::window;

pub const EMBED_KEY: &str = "embed";

/// The embed view's own page, which may be framed (the full page may not).
pub const EMBED_PAGE: &str = "embed.html";

/// Whether this document is the embed view's own page.
pub fn is_embed_page() -> bool {
    window().location().pathname().is_ok_and(|p| p.ends_with(EMBED_PAGE))
}

/// The host of `url` (resolved against the page) when it is not the page's own origin.
pub fn foreign_host(url: &str) -> Option<String> {
    let location = web_sys::window()?.location();
    let page = location.origin().ok()?;
    match web_sys::Url::new_with_base(url, &location.href().ok()?) {
        Ok(resolved) if resolved.origin() == page => None,
        Ok(resolved) => {
            Some(resolved.host()).filter(|h| !h.is_empty()).or(Some(resolved.protocol()))
        }
        // Not a URL at all: not the page's own.
        Err(_) => Some(url.chars().take(40).collect()),
    }
}

/// The directory the page is served from; URLs under it are shared relative to it.
pub fn page_directory() -> String {
    let location = window().location();
    let address = format!(
        "{}{}",
        location.origin().unwrap_or_default(),
        location.pathname().unwrap_or_default()
    );
    address[..address.rfind('/').map_or(address.len(), |i| i + 1)].to_string()
}
