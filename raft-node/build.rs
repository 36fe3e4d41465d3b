//! Generates Rust code for `proto/raftkv.proto` with the pure-Rust protobuf 2 code generator
//! (no protoc needed), stripping the inner attributes that `include!` cannot take.

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=proto/raftkv.proto");
    protobuf_codegen_pure::Codegen::new()
        .out_dir(&out)
        .inputs(["proto/raftkv.proto"])
        .include("proto")
        .run()
        .expect("protobuf codegen");
    let path = format!("{out}/raftkv.rs");
    let text = std::fs::read_to_string(&path).expect("read generated code");
    let cleaned: String = text
        .lines()
        .filter(|l| !l.starts_with("#![") && !l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, cleaned).expect("write generated code");
}
