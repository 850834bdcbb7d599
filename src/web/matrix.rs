//! A continuation explained token by token: a token × earlier-token heat map. Row j explains
//! continuation token j from every token before it; clicking a row shows it on the text.

use super::app::Ui;
use crate::engine::token_text::visible;
use crate::state::colour::{short, Scale};
use leptos::prelude::*;

#[component]
pub fn ContinuationMatrix(ui: Ui) -> impl IntoView {
    let view_settings = ui.setting(|s| s.view.clone());
    move || {
        let a = ui.result.get()?.attribution;
        let continuation = a.continuation?;
        let view = view_settings.get();
        let selected = ui.row.get();
        // The last token explains nothing after it, so it is only ever a row.
        let columns = &continuation.tokens[..continuation.tokens.len() - 1];
        let output_start = continuation.output_start;
        let header = columns
            .iter()
            .enumerate()
            .map(|(i, t)| view! { <th class="column" class:output={i >= output_start} title=format!("token {i}, id {}", t.id)><span>{visible(&t.text)}</span></th> })
            .collect_view();
        let rows = continuation.rows.into_iter().enumerate().map(|(j, row)| {
            let scale = Scale::new(&row.scores, a.signed, &view);
            let cells = (0..columns.len()).map(|i| match row.scores.get(i) {
                Some(score) => view! {
                    <td data-score=score.to_string() style=format!("background:{}", scale.colour(*score))
                        title=format!("{} → {}: {}", visible(&columns[i].text), visible(&row.target.text), short(*score as f64))></td>
                }.into_any(),
                None => view! { <td class="blank"></td> }.into_any(),
            }).collect_view();
            let show = move || ui.row.set(Some(j));
            view! {
                <tr data-testid="matrix-row" data-row=j.to_string() data-token-id=row.target.id.to_string()
                    class:selected=selected == Some(j) tabindex="0" on:click=move |_| show()
                    on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" { show() }>
                    <th class="row-label" title=format!("id {}, p = {:.4} after the tokens before it", row.target.id, row.target.prob)>
                        <span class="tok">{visible(&row.target.text)}</span>
                        <span class="prob">{format!("{:.1}%", 100.0 * row.target.prob)}</span>
                    </th>
                    {cells}
                </tr>
            }
        }).collect_view();
        Some(view! {
            <section class="matrix-section">
                <h2>"The continuation, token by token"</h2>
                <p class="muted small">
                    "Each row explains one continuation token (with its probability after the tokens before it) from every earlier token; each row is coloured on its own scale. Click a row to show it on the text."
                </p>
                <div class="matrix-scroll">
                    <table class="matrix" data-testid="matrix">
                        <thead><tr><th></th>{header}</tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
            </section>
        })
    }
}
