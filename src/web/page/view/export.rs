//! The export buttons, and loading an exported result (the file input, or a JSON file dropped on
//! the page).

use crate::web::page::files::{export, import, Format};
use crate::web::page::sharing::Sharing;
use crate::web::page::ui::Ui;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// A `.json` file dropped anywhere on the page is an export to load. The model panel loads any
/// other dropped file as a model: this listener runs first (on the document, before the
/// window's) and keeps JSON files from reaching it.
fn accept_dropped_json(ui: Ui, sharing: Sharing) {
    let on_drop = Closure::<dyn Fn(web_sys::DragEvent)>::new(move |ev: web_sys::DragEvent| {
        let file = ev.data_transfer().and_then(|d| d.files()).and_then(|files| files.get(0));
        if let Some(file) = file.filter(|f| {
            f.name().to_lowercase().ends_with(".json") || f.type_() == "application/json"
        }) {
            ev.prevent_default();
            ev.stop_propagation();
            import(ui, sharing, file);
        }
    });
    let _ = document().add_event_listener_with_callback("drop", on_drop.as_ref().unchecked_ref());
    on_drop.forget(); // for the page's lifetime
}

#[component]
pub fn ExportPanel(ui: Ui, sharing: Sharing) -> impl IntoView {
    accept_dropped_json(ui, sharing);
    let nothing = move || ui.result.with(Option::is_none);
    let button = move |format: Format| {
        let on_click = move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = export(ui, format).await {
                    sharing.problem.set(Some(format!(
                        "The {} export failed: {e:?}.",
                        format.extension().to_uppercase()
                    )));
                }
            })
        };
        view! {
            <button data-testid=format!("export-{}", format.extension()) disabled=nothing on:click=on_click>
                {format.extension().to_uppercase()}
            </button>
        }
    };
    view! {
        <div class="control-row export">
            <span class="muted">"Download the result as"</span>
            {Format::ALL.map(button).collect_view()}
            <label class="file-input" title="A JSON file exported here; or drop it on the page">"Load a result "
                <input type="file" accept=".json,application/json" data-testid="import-json" on:change=move |ev| {
                    let input: web_sys::HtmlInputElement = event_target(&ev);
                    if let Some(file) = input.files().and_then(|files| files.get(0)) {
                        import(ui, sharing, file);
                    }
                    input.set_value("");
                }/>
            </label>
        </div>
    }
}
