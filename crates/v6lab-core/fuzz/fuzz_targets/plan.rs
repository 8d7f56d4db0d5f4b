//! Any bytes through the whole pure pipeline: parse, validate, plan, render diagnostics.
//! It must never panic, and every diagnostic must render.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match v6lab_core::plan_source("fuzz.yaml", data) {
        Ok((_, plan)) => {
            let _ = v6lab_core::report::plan_table(&plan);
            let _ = v6lab_core::graph::svg(&plan);
        }
        Err((src, d)) => {
            let _ = d.render(&src.text);
        }
    }
});
