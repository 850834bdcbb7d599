//! The page's root: the full page's sections in order, the embed view, or, inside another site's
//! frame, a notice in place of the page.

use crate::web::page::persist;
use crate::web::page::sharing::Sharing;
use crate::web::page::ui::Ui;
use crate::web::page::view::compare::{CompareControls, ComparePanel};
use crate::web::page::view::controls::{Editor, MethodControls, ViewControls};
use crate::web::page::view::embed::Embed;
use crate::web::page::view::faithfulness::FaithfulnessPanel;
use crate::web::page::view::heatmap::{HeatMap, Legend};
use crate::web::page::view::matrix::ContinuationMatrix;
use crate::web::page::view::model_panel::ModelPanel;
use crate::web::page::view::panels::{Completeness, ModelLine, Status, TimingsPanel};
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
            <p class="tagline">"Which tokens did the model lean on? Input attribution for a language model, computed in your browser."</p>
        </header>
        <main>
            <Status ui=ui/>
            <LinkNotes ui=ui sharing=sharing/>
            <ModelPanel ui=ui/>
            <Editor ui=ui/>
            <MethodControls ui=ui/>
            <section class="question">
                <Predictions ui=ui/>
                <TargetPanel ui=ui/>
            </section>
            <section class="result">
                <ViewControls ui=ui/>
                <div class="map-and-checks">
                    <div class="map-column">
                        <HeatMap ui=ui/>
                        <Legend ui=ui/>
                        <Completeness ui=ui/>
                    </div>
                    <FaithfulnessPanel ui=ui/>
                </div>
            </section>
            <ContinuationMatrix ui=ui/>
            <section class="comparison">
                <CompareControls ui=ui/>
                <ComparePanel ui=ui/>
            </section>
            <ReportCard ui=ui/>
            <SharePanel ui=ui sharing=sharing/>
            <TimingsPanel ui=ui/>
        </main>
        <footer>
            <ModelLine ui=ui/>
        </footer>
    }
    .into_any()
}
