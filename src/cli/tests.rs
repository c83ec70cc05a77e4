use super::*;

#[test]
fn rota_import_reads_its_file_on_the_callers_side() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rota.toml");
    std::fs::write(&path, "timezone = \"UTC\"\n").expect("write");
    let command =
        StoreCommand::from_rota(RotaCommand::Import { file: path.clone() }).expect("read the file");
    assert_eq!(
        command,
        StoreCommand::RotaImport {
            file: path.display().to_string(),
            text: "timezone = \"UTC\"\n".to_owned()
        }
    );
    let missing = StoreCommand::from_rota(RotaCommand::Import {
        file: dir.path().join("missing.toml"),
    })
    .expect_err("no such file");
    assert!(format!("{missing:#}").contains("cannot read rota file"));
}
