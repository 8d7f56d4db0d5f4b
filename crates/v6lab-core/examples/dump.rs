fn main() {
    let f = std::env::args().nth(1).unwrap();
    let bytes = std::fs::read(&f).unwrap();
    match v6lab_core::plan_source(&f, &bytes) {
        Ok((_, p)) => println!("{}", serde_json::to_string_pretty(&p).unwrap()),
        Err((s, d)) => print!("{}", d.render(&s.text)),
    }
}
