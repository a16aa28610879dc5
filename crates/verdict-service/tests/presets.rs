//! Each preset over the whole tour: every seed row is produced in the
//! situation its description gives, and no code outside the seed's table is
//! ever sent (every status of every request is collected).

mod common;

use common::tour;
use verdict::Preset;

#[tokio::test]
async fn each_preset_sends_its_codes_for_each_situation_and_nothing_else() {
    for preset in Preset::all() {
        let mut flags: Vec<&str> = tour::FLAGS.to_vec();
        flags.extend(["--preset", preset.name()]);
        let s = common::start(&flags).await;
        let steps = tour::run(&s).await;
        for st in &steps {
            let want = st.expect.status(&preset);
            assert_eq!(
                st.reply.status.as_u16(),
                want,
                "{preset} / {}: {}",
                st.row,
                st.reply.text()
            );
            if st.reply.status.as_u16() >= 400 {
                assert_eq!(
                    st.reply.header("content-type"),
                    preset.format().content_type(),
                    "{preset} / {}",
                    st.row
                );
                assert_eq!(st.reply.header("cache-control"), "no-store");
                if let Some(h) = verdict::status::missing_header(st.reply.status, &st.reply.headers)
                {
                    panic!("{preset} / {}: {} lacks {h:?}", st.row, st.reply.status);
                }
            }
        }
        let sent: Vec<(String, u16)> = s.statuses();
        if let Some(allowed) = preset.allowed_codes() {
            let outside: Vec<_> = sent.iter().filter(|(_, c)| !allowed.contains(c)).collect();
            assert!(
                outside.is_empty(),
                "{preset} sent codes outside its table: {outside:?}"
            );
            // Every code of the seed's table was produced by the tour.
            let produced: std::collections::BTreeSet<u16> = sent.iter().map(|(_, c)| *c).collect();
            let missing: Vec<_> = allowed
                .iter()
                .filter(|c| !produced.contains(c) && **c != 502)
                .collect();
            assert!(missing.is_empty(), "{preset} never produced {missing:?}");
        }
    }
}
