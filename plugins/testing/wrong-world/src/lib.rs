//! A component of another world: the host must refuse it with a clear error.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "wit", world: "other" });

    struct Other;

    impl Guest for Other {
        fn describe() -> String {
            "not a strategy".into()
        }
        fn evaluate(x: u32) -> u32 {
            x + 1
        }
    }

    export!(Other);
}
