//! The page's wasm binary (built by Trunk): the UI on the page, the engine in its worker.

#[cfg(target_arch = "wasm32")]
fn main() {
    salient::web::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("salient-web is the page's WebAssembly binary: build it with `make build` (Trunk).");
    std::process::exit(2);
}
