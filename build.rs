// Embedded assets are read at compile time by macros that cargo cannot see
// into; without this, editing a template or locale would not rebuild.
fn main() {
    for dir in ["locales", "templates", "static", "migrations"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
