use super::*;

#[test]
fn a_password_that_is_wrong_or_missing_is_named_and_the_key_never_quoted() {
    let minisign::KeyPair { sk, .. } =
        minisign::KeyPair::generate_encrypted_keypair(Some("right".into())).unwrap();
    let text = sk.to_box(None).unwrap().to_string();
    let b64 = text.lines().nth(1).unwrap();
    let missing = Signer::load(&text, None).err().unwrap();
    assert_eq!(
        missing,
        "evidence.sign_key is encrypted: set evidence.sign_key_password"
    );
    let garbage = Signer::load("RWQnot-a-key", None).err().unwrap();
    assert!(
        garbage.starts_with("evidence.sign_key is not a minisign secret key"),
        "{garbage}"
    );
    for e in [missing, garbage] {
        assert!(!e.contains(b64), "{e}");
    }
}

#[test]
fn an_unencrypted_key_signs_with_or_without_its_comment_line() {
    let minisign::KeyPair { pk, sk } = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let text = sk.to_box(None).unwrap().to_string();
    let line = text.lines().nth(1).unwrap();
    for key in [text.as_str(), line] {
        let signer = Signer::load(key, None).unwrap();
        let sig = signer.sign(b"record", "file:x.json").unwrap();
        let sig = minisign::SignatureBox::from_string(&sig).unwrap();
        minisign::verify(
            &pk,
            &sig,
            std::io::Cursor::new(b"record"),
            true,
            false,
            false,
        )
        .unwrap();
        assert!(
            minisign::verify(
                &pk,
                &sig,
                std::io::Cursor::new(b"recorD"),
                true,
                false,
                false
            )
            .is_err()
        );
    }
    let has_password = Signer::load(&text, Some("pw")).err().unwrap();
    assert!(has_password.contains("has no password"), "{has_password}");
}
