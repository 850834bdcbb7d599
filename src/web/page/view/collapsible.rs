//! A section of the page that folds away under its title. Which ones are folded is part of the
//! view settings (`ViewSettings::collapsed`), so a link and the saved state reopen the page as it
//! was, and folding never reruns anything.

use crate::web::page::ui::{Rerun, Ui};
use leptos::prelude::*;

#[component]
pub fn Collapsible(
    ui: Ui,
    /// One of `state::settings::PANELS`.
    name: &'static str,
    title: &'static str,
    children: Children,
) -> impl IntoView {
    let open =
        Memo::new(move |_| ui.settings.with(|s| !s.view.collapsed.iter().any(|c| c == name)));
    let on_toggle = move |ev: web_sys::Event| {
        let now_open = event_target::<web_sys::Element>(&ev).has_attribute("open");
        if now_open != open.get_untracked() {
            ui.change(
                move |s| match now_open {
                    true => s.view.collapsed.retain(|c| c != name),
                    false => s.view.collapsed.push(name.to_string()),
                },
                Rerun::Never,
            );
        }
    };
    view! {
        <details class="panel" data-testid="panel" data-panel=name prop:open=move || open.get() on:toggle=on_toggle>
            <summary>{title}</summary>
            {children()}
        </details>
    }
}
