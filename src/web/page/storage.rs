//! The browser's local storage of the settings: what the last visit saved (a damaged entry is
//! ignored, not fatal), and saving them.

use crate::state::settings::Settings;

const STORAGE_KEY: &str = "salient.settings.v1";

fn storage() -> Option<web_sys::Storage> {
    // Throws in sandboxed frames and with storage disabled: then the page works without it.
    web_sys::window()?.local_storage().ok().flatten()
}

/// The settings saved by an earlier visit, if any (a damaged entry is ignored, not fatal).
pub fn stored_settings() -> Option<Settings> {
    let json = storage()?.get_item(STORAGE_KEY).ok().flatten()?;
    match serde_json::from_str(&json) {
        Ok(settings) => Some(settings),
        Err(e) => {
            web_sys::console::warn_1(&format!("ignoring the saved settings: {e}").into());
            None
        }
    }
}

/// Saves the settings' JSON for the next visit (where storage is unavailable, the page works
/// without it).
pub fn save_settings(json: &str) {
    if let Some(storage) = storage() {
        if let Err(e) = storage.set_item(STORAGE_KEY, json) {
            web_sys::console::warn_1(
                &format!("could not save the settings in localStorage: {e:?}").into(),
            );
        }
    }
}
