//! The browser's local storage of the settings and of the backend chosen: what the last visit
//! saved (a damaged entry is ignored, not fatal), and saving them.

use crate::state::backend::BackendChoice;
use crate::state::settings::Settings;

const STORAGE_KEY: &str = "salient.settings.v1";
const BACKEND_KEY: &str = "salient.backend";

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

/// The backend the page's address names (`?backend=gpu`), else the one this browser chose last,
/// else auto. A name that is not a choice is ignored.
pub fn initial_backend() -> BackendChoice {
    let search = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
    let asked = web_sys::UrlSearchParams::new_with_str(&search).ok().and_then(|q| q.get("backend"));
    let saved = || storage()?.get_item(BACKEND_KEY).ok().flatten();
    asked.or_else(saved).and_then(|name| BackendChoice::from_name(&name)).unwrap_or_default()
}

pub fn save_backend(choice: BackendChoice) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(BACKEND_KEY, choice.name());
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
