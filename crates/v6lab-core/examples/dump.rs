fn main() {
    let f = std::env::args().nth(1).unwrap();
    let bytes = std::fs::read(&f).unwrap();
    match v6lab_core::plan_source(&f, &bytes) {
        Ok((_, p)) => {
            if std::env::args().nth(2).is_some() {
                print!("{}", v6lab_core::report::plan_table(&p))
            } else {
                println!("{}", serde_json::to_string_pretty(&p).unwrap())
            }
        }
        Err((s, d)) => print!("{}", d.render(&s.text)),
    }
}
