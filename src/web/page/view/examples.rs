//! The built-in examples (`state::examples`), one click each, with the caption of the one shown.
//! The person's own settings are kept aside when the first example replaces them, and one click
//! brings them back.

use crate::state::examples::{by_name, Example, EXAMPLES};
use crate::state::settings::Settings;
use crate::web::page::ui::{Rerun, Ui};
use leptos::prelude::*;

#[component]
pub fn Examples(ui: Ui) -> impl IntoView {
    // What the person had before the first example, until they take it back.
    let own = RwSignal::new(None::<Settings>);
    let chosen = RwSignal::new(None::<&'static str>);
    let choose = move |example: &'static Example| {
        if own.with_untracked(Option::is_none) {
            own.set(Some(ui.settings.get_untracked()));
        }
        chosen.set(Some(example.name));
        ui.row.set(None);
        ui.change(
            move |s| {
                let next = example.settings(s);
                *s = next;
            },
            Rerun::Now,
        );
    };
    let back = move |_| {
        if let Some(settings) = own.get_untracked() {
            own.set(None);
            chosen.set(None);
            ui.row.set(None);
            ui.change(move |s| *s = settings, Rerun::Now);
        }
    };
    // The caption while the example's text is the text.
    let caption = move || {
        let example = chosen.get().and_then(by_name)?;
        ui.settings.with(|s| s.text == example.text).then(|| view! {
            <p class="example-caption" data-testid="example-caption" data-example=example.name data-evidence=example.evidence>{example.caption}</p>
        })
    };
    view! {
        <div class="examples" role="group" aria-label="Examples">
            <span class="muted">"Try:"</span>
            {EXAMPLES.iter().map(|example| view! {
                <button class="example" data-testid="example" data-example=example.name
                    aria-pressed=move || (chosen.get() == Some(example.name)).to_string()
                    on:click=move |_| choose(example)>{example.label}</button>
            }).collect_view()}
            <Show when=move || own.with(Option::is_some)>
                <button class="link" data-testid="example-back" on:click=back>"↩ back to your text"</button>
            </Show>
        </div>
        {caption}
    }
}
