//! Tests of the GGUF header reader: a builder for valid and broken files, every limit
//! and check, and property tests over generated tables.

/// GGUF files written field by field, for tests here and in the engine (which can also
/// write wrong ones).
pub(crate) mod testing {
    use super::super::*;

    pub(crate) const F32: u32 = 0;
    pub(crate) const Q8_0: u32 = 8;

    /// A GGUF header written field by field, so tests can also write wrong ones.
    pub(crate) struct Build {
        pub(crate) version: u32,
        alignment: u64,
        metadata: Vec<u8>,
        pairs: u64,
        infos: Vec<u8>,
        tensors: u64,
    }

    pub(crate) fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s);
    }

    impl Build {
        pub(crate) fn new() -> Build {
            Build {
                version: 3,
                alignment: DEFAULT_ALIGNMENT,
                metadata: Vec::new(),
                pairs: 0,
                infos: Vec::new(),
                tensors: 0,
            }
        }

        /// A metadata pair: key, value type and the value's bytes.
        pub(crate) fn meta(mut self, key: &str, ty: u32, value: &[u8]) -> Build {
            string(&mut self.metadata, key.as_bytes());
            self.metadata.extend_from_slice(&ty.to_le_bytes());
            self.metadata.extend_from_slice(value);
            self.pairs += 1;
            self
        }

        pub(crate) fn aligned(self, alignment: u32) -> Build {
            let mut b = self.meta("general.alignment", TYPE_U32, &alignment.to_le_bytes());
            b.alignment = alignment.into();
            b
        }

        pub(crate) fn tensor(mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Build {
            string(&mut self.infos, name.as_bytes());
            self.infos.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| self.infos.extend_from_slice(&d.to_le_bytes()));
            self.infos.extend_from_slice(&ty.to_le_bytes());
            self.infos.extend_from_slice(&offset.to_le_bytes());
            self.tensors += 1;
            self
        }

        /// Everything up to the data section, padding included.
        pub(crate) fn header(&self) -> Vec<u8> {
            let mut out = MAGIC.to_vec();
            out.extend_from_slice(&self.version.to_le_bytes());
            out.extend_from_slice(&self.tensors.to_le_bytes());
            out.extend_from_slice(&self.pairs.to_le_bytes());
            out.extend_from_slice(&self.metadata);
            out.extend_from_slice(&self.infos);
            out.resize(out.len().next_multiple_of(self.alignment as usize), 0);
            out
        }

        /// The header followed by `data` bytes of tensor data.
        pub(crate) fn file(&self, data: usize) -> Vec<u8> {
            let mut out = self.header();
            out.extend((0..data).map(|i| i as u8));
            out
        }
    }
}

mod reader {
    use super::super::*;
    use super::testing::*;
    use proptest::prelude::*;

    const BF16: u32 = 30;
    const Q4_K: u32 = 12;

    fn parse_file(bytes: &[u8]) -> Result<Header, GgufError> {
        read_header(bytes, bytes.len() as u64)
    }

    /// Three tensors (128, 68 and 6 bytes) with string, string-array and number-array
    /// metadata in front of them.
    fn sample() -> Build {
        let mut tokens = TYPE_STRING.to_le_bytes().to_vec();
        tokens.extend_from_slice(&3u64.to_le_bytes());
        ["<s>", "</s>", "hello"]
            .iter()
            .for_each(|t| string(&mut tokens, t.as_bytes()));
        let mut scores = 6u32.to_le_bytes().to_vec();
        scores.extend_from_slice(&2u64.to_le_bytes());
        scores.extend_from_slice(&[0; 8]);
        let mut arch = Vec::new();
        string(&mut arch, b"llama");
        Build::new()
            .meta("general.architecture", TYPE_STRING, &arch)
            .meta("llama.block_count", TYPE_U32, &2u32.to_le_bytes())
            .meta("tokenizer.ggml.tokens", TYPE_ARRAY, &tokens)
            .meta("tokenizer.ggml.scores", TYPE_ARRAY, &scores)
            .tensor("token_embd.weight", &[8, 4], F32, 0)
            .tensor("blk.0.attn_q.weight", &[64], Q8_0, 128)
            .tensor("output_norm.weight", &[3], BF16, 224)
    }

    #[test]
    fn a_v3_file_gives_its_tensor_table_and_a_layout_with_padding_in_each_span() {
        let b = sample();
        let bytes = b.file(230);
        let header = parse_file(&bytes).unwrap();
        let start = b.header().len() as u64;
        assert_eq!((header.version, header.alignment, header.data_start), (3, 32, start));
        let table: Vec<_> = header
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.offset, t.size))
            .collect();
        assert_eq!(
            table,
            vec![
                ("token_embd.weight", 0, 128),
                ("blk.0.attn_q.weight", 128, 68),
                ("output_norm.weight", 224, 6)
            ]
        );
        let layout = header.layout(bytes.len() as u64);
        let spans: Vec<_> = layout
            .tensors
            .iter()
            .map(|t| (t.start - start, t.end - start, t.dtype))
            .collect();
        assert_eq!(
            spans,
            vec![
                (0, 128, Dtype::Float(4)),
                (128, 224, Dtype::Quantized),
                (224, 230, Dtype::Float(2))
            ]
        );
        assert_eq!(layout.cuts(), [0, 128, 224, 230].map(|c| start + c).to_vec());
        assert_eq!(layout.elements_at(start + 130), None);
        assert!(layout.elements_at(start + 2).is_some());
    }

    #[test]
    fn general_alignment_moves_the_data_section_and_must_be_a_power_of_two() {
        let b = Build::new().aligned(64).tensor("w", &[16], F32, 0);
        let bytes = b.file(64);
        let header = parse_file(&bytes).unwrap();
        assert_eq!((header.alignment, header.data_start % 64), (64, 0));
        let bytes = Build::new().aligned(48).tensor("w", &[16], F32, 0).file(64);
        let err = parse_file(&bytes).unwrap_err().to_string();
        assert!(
            err.contains("general.alignment") && err.contains("power of two"),
            "{err}"
        );
        let twice = Build::new().aligned(64).aligned(64).file(0);
        assert!(parse_file(&twice).unwrap_err().to_string().contains("twice"));
        let string_valued = Build::new().meta("general.alignment", TYPE_STRING, &[0; 8]).file(0);
        assert!(
            parse_file(&string_valued)
                .unwrap_err()
                .to_string()
                .contains("not a u32")
        );
    }

    fn limit_of(bytes: &[u8]) -> &'static str {
        match parse_file(bytes) {
            Err(GgufError::Limit { what, .. }) => what,
            other => panic!("expected a limit, got {other:?}"),
        }
    }

    #[test]
    fn every_count_and_length_is_capped_before_it_is_used() {
        let mut huge = Build::new().file(0);
        huge[8..16].copy_from_slice(&(MAX_TENSORS + 1).to_le_bytes());
        assert_eq!(limit_of(&huge), "tensor count");
        huge[8..16].copy_from_slice(&0u64.to_le_bytes());
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(limit_of(&huge), "metadata count");

        let long_key = Build::new().meta(&"k".repeat(MAX_STRING as usize + 1), 0, &[1]).file(0);
        assert_eq!(limit_of(&long_key), "metadata key length");
        let mut long_value = (MAX_STRING + 1).to_le_bytes().to_vec();
        long_value.resize(64, b'x');
        assert_eq!(
            limit_of(&Build::new().meta("k", TYPE_STRING, &long_value).file(0)),
            "string length"
        );
        let mut long_array = 0u32.to_le_bytes().to_vec();
        long_array.extend_from_slice(&(MAX_ARRAY + 1).to_le_bytes());
        assert_eq!(
            limit_of(&Build::new().meta("k", TYPE_ARRAY, &long_array).file(0)),
            "array length"
        );
        let mut nested = Vec::new();
        for _ in 0..=MAX_NESTING {
            nested.extend_from_slice(&TYPE_ARRAY.to_le_bytes());
            nested.extend_from_slice(&1u64.to_le_bytes());
        }
        nested.extend_from_slice(&[0; 16]);
        assert_eq!(
            limit_of(&Build::new().meta("k", TYPE_ARRAY, &nested).file(0)),
            "array nesting"
        );

        let long_name = "n".repeat(MAX_NAME as usize + 1);
        assert_eq!(
            limit_of(&Build::new().tensor(&long_name, &[1], F32, 0).file(4)),
            "tensor name length"
        );
        assert_eq!(
            limit_of(&Build::new().tensor("w", &[1; 5], F32, 0).file(4)),
            "dimension count"
        );
    }

    #[test]
    fn a_header_cut_short_is_truncated_at_every_length() {
        let header = sample().header();
        let infos_end = header.iter().rposition(|b| *b != 0).unwrap();
        for len in 0..infos_end {
            assert_eq!(parse_file(&header[..len]), Err(GgufError::Truncated), "cut at {len}");
        }
        // A prefix shorter than the file is truncated too: the caller reads more.
        let bytes = sample().file(230);
        assert_eq!(read_header(&bytes[..40], bytes.len() as u64), Err(GgufError::Truncated));
    }

    fn problem(b: Build, data: usize) -> String {
        parse_file(&b.file(data)).unwrap_err().to_string()
    }

    #[test]
    fn tensors_past_the_end_overlapping_or_misplaced_are_refused_naming_them() {
        let past = problem(Build::new().tensor("w", &[16], F32, 0), 63);
        assert!(past.contains("\"w\"") && past.contains("past the end"), "{past}");
        let far = problem(Build::new().tensor("w", &[1], F32, u64::MAX - 31), 64);
        assert!(far.contains("past the end"), "{far}");
        let overlap = problem(Build::new().tensor("a", &[16], F32, 0).tensor("b", &[8], F32, 32), 64);
        assert!(overlap.contains("\"a\" and \"b\" overlap"), "{overlap}");
        let misaligned = problem(Build::new().tensor("w", &[4], F32, 4), 64);
        assert!(
            misaligned.contains("not a multiple of the alignment 32"),
            "{misaligned}"
        );
        let twice = problem(Build::new().tensor("w", &[4], F32, 0).tensor("w", &[4], F32, 32), 64);
        assert!(twice.contains("\"w\" appears twice"), "{twice}");
    }

    #[test]
    fn shapes_must_fill_whole_blocks_without_overflow() {
        let partial = problem(Build::new().tensor("q", &[48], Q8_0, 0), 64);
        assert!(partial.contains("not a multiple of Q8_0's block of 32"), "{partial}");
        let huge = problem(Build::new().tensor("w", &[1 << 32, 1 << 32], F32, 0), 64);
        assert!(huge.contains("too large"), "{huge}");
        let k = parse_file(&Build::new().tensor("k", &[512, 2], Q4_K, 0).file(576)).unwrap();
        assert_eq!(k.tensors[0].size, 4 * 144);
    }

    #[test]
    fn unknown_types_and_versions_are_refused() {
        let unknown = problem(Build::new().tensor("w", &[4], 31, 0), 64);
        assert!(unknown.contains("unknown ggml type 31"), "{unknown}");
        let value = problem(Build::new().meta("k", 13, &[0; 8]), 0);
        assert!(
            value.contains("\"k\"") && value.contains("unknown value type 13"),
            "{value}"
        );
        let mut old = Build::new();
        old.version = 1;
        assert_eq!(parse_file(&old.file(0)), Err(GgufError::Version(1)));
        assert_eq!(parse_file(b"GGML\x03\0\0\0"), Err(GgufError::Magic));
        assert!(is_gguf(b"GGUF\x03") && !is_gguf(b"GGU"));
    }

    #[test]
    fn a_file_without_tensors_is_all_header() {
        let bytes = Build::new().meta("general.name", TYPE_STRING, &[0; 8]).file(0);
        let layout = parse(&bytes[..56], 56).unwrap();
        assert_eq!((layout.data_start, layout.tensors.len()), (56, 0));
    }

    /// A random tensor table: unique names, shapes of whole blocks, packed in order.
    fn table() -> impl Strategy<Value = Vec<(u32, Vec<u64>)>> {
        let ty = prop::sample::select(vec![F32, 1, BF16, 28, 24, 27, 2, Q8_0, Q4_K, 20, 35, 39]);
        prop::collection::vec((ty, prop::collection::vec(1u64..5, 0..4), 0u64..4), 0..12).prop_map(|ts| {
            ts.into_iter()
                .map(|(ty, rest, blocks)| {
                    let block = ggml_type(ty).map_or(1, |t| t.block);
                    let mut dims = vec![blocks * block];
                    dims.extend(rest);
                    (ty, dims)
                })
                .collect()
        })
    }

    fn build(table: &[(u32, Vec<u64>)]) -> (Build, Vec<u64>, u64) {
        let mut b = Build::new().meta("general.name", TYPE_STRING, &[0; 8]);
        let (mut at, mut sizes) = (0u64, Vec::new());
        for (i, (ty, dims)) in table.iter().enumerate() {
            let size = tensor_size("t", dims, *ty).unwrap();
            b = b.tensor(&format!("blk.{i}.weight"), dims, *ty, at);
            sizes.push(size);
            at = (at + size).next_multiple_of(32);
        }
        (b, sizes, at)
    }

    proptest! {
        #[test]
        fn valid_files_round_trip_their_tensor_table(table in table()) {
            let (b, sizes, data) = build(&table);
            let bytes = b.file(data as usize);
            let header = parse_file(&bytes).unwrap();
            prop_assert_eq!(header.tensors.len(), table.len());
            for (i, (t, (ty, dims))) in header.tensors.iter().zip(&table).enumerate() {
                prop_assert_eq!(&t.name, &format!("blk.{i}.weight"));
                prop_assert_eq!((t.ggml_type, &t.dims, t.size), (*ty, dims, sizes[i]));
            }
            let layout = header.layout(bytes.len() as u64);
            prop_assert_eq!(layout.tensors.len(), sizes.iter().filter(|s| **s > 0).count());
            prop_assert!(layout.tensors.last().is_none_or(|t| t.end == bytes.len() as u64));
        }

        #[test]
        fn mutated_headers_parse_to_a_sound_layout_or_fail(
            table in table(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let (b, _, data) = build(&table);
            let mut bytes = b.file(data as usize);
            let header_len = b.header().len();
            for (at, value) in flips {
                bytes[at.index(header_len)] = value;
            }
            bytes.truncate(header_len + cut.index(bytes.len() - header_len + 1));
            if let Ok(layout) = parse(&bytes, bytes.len() as u64) {
                let mut reached = layout.data_start;
                for t in &layout.tensors {
                    prop_assert!(t.start >= reached && t.end > t.start && t.end <= bytes.len() as u64);
                    reached = t.end;
                }
            }
        }
    }
}
