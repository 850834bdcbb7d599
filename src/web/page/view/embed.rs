//! The embed view (`?embed#s=…`, or `#embed=…`): what an iframe on another page shows. The
//! highlighted text, the target, the legend and a link to the full page with the same state;
//! with `&editable`, the text editor and the status line too. An embed of a snapshot shows it
//! without loading any model.

use crate::state::format::short;
use crate::web::page::sharing::{full_page_link, Sharing};
use crate::web::page::ui::Ui;
use crate::web::page::view::controls::Editor;
use crate::web::page::view::heatmap::{HeatMap, Legend};
use crate::web::page::view::panels::Status;
use crate::web::page::view::share::LinkNotes;
use leptos::prelude::*;

#[component]
pub fn Embed(ui: Ui, sharing: Sharing) -> impl IntoView {
    let target = move || {
        let output = ui.result.get()?;
        let target = output.attribution.target.clone();
        Some(view! {
            <p class="embed-target" data-testid="embed-target" data-token-id=target.id.to_string()>
                "Next token explained: "<code>{format!("{:?}", target.text)}</code>{format!(" (p = {})", short(target.prob as f64))}
            </p>
        })
    };
    view! {
        <div class="embed" data-testid="embed-view">
            <LinkNotes ui=ui sharing=sharing/>
            {sharing.editable.then(|| view! { <Editor ui=ui/> })}
            <Show when=move || sharing.editable || ui.result.with(Option::is_none)>
                <Status ui=ui/>
            </Show>
            {target}
            <HeatMap ui=ui/>
            <Legend ui=ui/>
            <p class="embed-footer">
                <a data-testid="open-in-salient" href=move || full_page_link(ui, sharing) target="_blank" rel="noopener">
                    "open in Salient ↗"
                </a>
            </p>
        </div>
    }
}
