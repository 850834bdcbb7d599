//! Never losing work: every change of the settings (the text included) is written to
//! localStorage at once and, after a pause, into the page's own address as a `#s=` state
//! (`history.replaceState`, so the back button is untouched). A reload, or the address copied
//! from the bar, restores them. Nothing here ever clears the settings; an embed writes nothing,
//! so a page embedding Salient never overwrites what the user was doing in a tab of their own.

use crate::web::page::sharing::{current_state, replace_fragment, too_long_for_a_link, Sharing};
use crate::web::page::storage::save_settings;
use crate::web::page::ui::Ui;
use leptos::prelude::*;

/// The address is rewritten after this pause, not on every keystroke.
const FRAGMENT_DELAY_MS: u32 = 500;

/// Saves the settings on every change from now on.
pub fn keep(ui: Ui, sharing: Sharing) {
    if sharing.embed {
        return;
    }
    let fragment_timer = StoredValue::new_local(None::<gloo::timers::callback::Timeout>);
    Effect::new(move |previous: Option<()>| {
        let json = ui.settings.with(|s| serde_json::to_string(s).expect("settings serialise"));
        // The first run sees the settings the page opened with: a link's stay in the address
        // until the user changes something.
        if previous.is_none() {
            return;
        }
        save_settings(&json);
        // A state too long for a link leaves the address without one (a reload then restores
        // the saved settings instead of failing on a link), and the page says why.
        let timer = gloo::timers::callback::Timeout::new(FRAGMENT_DELAY_MS, move || {
            let state = current_state(ui, sharing, false);
            let payload = crate::state::link::encode(&state);
            let too_long = too_long_for_a_link(&payload);
            replace_fragment(too_long.is_none().then_some(payload.as_str()));
            sharing.unlinked.set(too_long);
        });
        fragment_timer.set_value(Some(timer));
    });
}
