//! The page's root: the full page's sections in order, the embed view, or, inside another site's
//! frame, a notice in place of the page.

use crate::web::page::persist;
use crate::web::page::sharing::Sharing;
use crate::web::page::ui::Ui;
use crate::web::page::view::collapsible::Collapsible;
use crate::web::page::view::compare::{CompareControls, ComparePanel};
use crate::web::page::view::components::ComponentsPanel;
use crate::web::page::view::controls::{MethodControls, ViewControls};
use crate::web::page::view::editor::Editor;
use crate::web::page::view::embed::Embed;
use crate::web::page::view::examples::Examples;
use crate::web::page::view::faithfulness::FaithfulnessPanel;
use crate::web::page::view::heatmap::{HeatMap, Legend};
use crate::web::page::view::matrix::ContinuationMatrix;
use crate::web::page::view::model_panel::ModelPanel;
use crate::web::page::view::panels::{Completeness, ModelLine, Sampling, Status, TimingsPanel};
use crate::web::page::view::report_card::ReportCard;
use crate::web::page::view::share::{LinkNotes, SharePanel};
use crate::web::page::view::targets::{Predictions, TargetPanel};
use leptos::prelude::*;

/// The full page inside another site's frame: nothing starts, and a link opens it on its own.
#[component]
pub fn Framed() -> impl IntoView {
    let address = window().location().href().unwrap_or_default();
    view! {
        <main class="framed" data-testid="framed">
            <h1>"Salient"</h1>
            <p>"Salient's full page does not run inside another site's frame: it downloads models and manages the ones this browser keeps. Sites embed Salient through its embed view (“Embed” under “Share, embed, export”)."</p>
            <p><a href=address target="_blank" rel="noopener">"Open Salient in its own tab ↗"</a></p>
        </main>
    }
}

/// The page: the full one, or (`embed`) the embed view.
#[component]
pub fn App(embed: bool) -> impl IntoView {
    let ui = Ui::new();
    // A share link, the saved settings or the defaults; the worker waits while a model needs the
    // person's word.
    let sharing = Sharing::open(ui, embed);
    persist::keep(ui, sharing);
    if sharing.start_now {
        ui.start_worker();
    }
    if sharing.embed {
        return view! { <Embed ui=ui sharing=sharing/> }.into_any();
    }
    view! {
        <header>
            <h1>"Salient"</h1>
            <p class="tagline">"Which tokens did the model lean on? Type a text and see, computed in your browser."</p>
        </header>
        <main>
            <ModelPanel ui=ui/>
            <Status ui=ui/>
            <LinkNotes ui=ui sharing=sharing/>
            <Examples ui=ui/>
            <Editor ui=ui/>
            <div class="under-editor">
                <Legend ui=ui/>
                <Completeness ui=ui/>
                <Sampling ui=ui/>
            </div>
            <MethodControls ui=ui/>
            <section class="question">
                <Predictions ui=ui/>
                <TargetPanel ui=ui/>
            </section>
            <HeatMap ui=ui testid="row-map" rows_only=true/>
            <Collapsible ui=ui name="view" title="View: tokens, words or sentences; colours">
                <ViewControls ui=ui/>
            </Collapsible>
            <Collapsible ui=ui name="faithfulness" title="Faithfulness: does removing the top tokens change the prediction?">
                <FaithfulnessPanel ui=ui/>
            </Collapsible>
            <ContinuationMatrix ui=ui/>
            <Collapsible ui=ui name="compare" title="Compare methods">
                <section class="comparison">
                    <CompareControls ui=ui/>
                    <ComparePanel ui=ui/>
                </section>
            </Collapsible>
            <ReportCard ui=ui/>
            <ComponentsPanel ui=ui/>
            <Collapsible ui=ui name="share" title="Share, embed, export">
                <SharePanel ui=ui sharing=sharing/>
            </Collapsible>
            <TimingsPanel ui=ui/>
        </main>
        <footer>
            <ModelLine ui=ui/>
        </footer>
    }
    .into_any()
}
