//! One cfg, `gpu`, for where the GPU backend is built: everywhere but the page's multi-threaded
//! worker, whose wasm atomics make `wgpu`'s objects neither `Send` nor `Sync` (the page computes
//! on the GPU in its single-threaded worker).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gpu)");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "wasm32");
    let atomics = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .is_ok_and(|features| features.split(',').any(|f| f == "atomics"));
    if !(wasm && atomics) {
        println!("cargo::rustc-cfg=gpu");
    }
}
