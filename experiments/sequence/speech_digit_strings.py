"""Speech recognition of connected digit strings (docs/curriculum.md#f23): a model hears
"three one four one five" and writes the words. The course's recipe: the sound becomes a
spectrogram, a few 1-D convolutions shorten it in time, a Transformer encoder reads it,
and an attention-based decoder writes the word sequence (sequence-to-sequence).

Data (dlx/data/speech_strings.py): strings of 2-7 digits from dlx's formant synthesiser
(dlx/data/speech.py), the words joined with short pauses, each at its own tempo, said by
one speaker at 10-30 dB SNR; 3 s at 8 kHz. 4000 training utterances by 200 speakers;
validation (300) and test (1000) by speakers never heard in training.

Model (dlx/models/speech_seq2seq.py): log-mel inside the model (40 bands, 10 ms hop,
standardised per utterance), SpecAugment in training, two stride-2 1-D convolutions
(301 frames -> 76 steps), a pre-norm Transformer encoder and a pre-norm Transformer
decoder with cross-attention to the encoded audio, trained with teacher forcing;
transcripts by greedy decoding. AdamW, cosine schedule.

`test.wer` is the word error rate of the greedy transcripts: word-level edit distance
(substitutions + deletions + insertions, dlx/ops/edit_distance.py) summed over the test
set / the number of reference words. `test.sentence_error_rate` is the fraction of
utterances not transcribed exactly. The report splits the errors by kind and by string
length and lists decoded examples (also in the log).

Expected: test WER about 0.01 (bar 0.05); deletions are the commonest errors, often one
of a repeated digit ("eight eight" heard as "eight"; experiments/sequence/README.md has
the measurements).

  ./launch.sh speech_digit_strings
"""

import ml_collections

from dlx import config as config_lib
from dlx.data import speech_strings
from dlx.models import speech_seq2seq
from dlx.tasks import speech_transcription


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.data = ml_collections.ConfigDict(
    dict(
      num_train=4000,
      num_validation=300,
      num_test=1000,
      num_train_speakers=200,
      min_digits=2,
      max_digits=7,
      duration=3.0,
      snr_db=(10.0, 30.0),
    )
  )
  config.model = config_lib.model_config(
    vocab_size=13,  # PAD, BOS, EOS and ten words
    max_length=config.data.get_ref("max_digits") + 1,  # the words and EOS
    sample_rate=8000,
    frame_length=200,
    hop_length=80,
    fft_length=256,
    num_mels=40,
    conv_channels=(64, 64),
    conv_kernel=5,
    conv_stride=2,
    num_layers=3,
    decoder_layers=2,
    num_heads=4,
    features=96,
    hidden=192,
    dropout_rate=0.1,
    time_masks=2,
    time_mask_width=10,
    freq_masks=2,
    freq_mask_width=6,
  )
  config.batch_size = 32
  config.eval_batch_size = 100
  config.train_eval_examples = 500  # the final train-split WER decodes this many
  config.num_train_steps = 3000
  config.log_every_steps = 100
  config.eval_every_steps = 1000
  config.checkpoint_every_steps = 1000
  config.best_metric = "wer"
  config.best_mode = "min"
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 1e-2
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 200
  config.optimizer.grad_clip_norm = 1.0
  if config_lib.SMOKE in args:
    config_lib.smoke(
      config,
      **{
        "data.num_train": 16,
        "data.num_validation": 8,
        "data.num_test": 8,
        "data.num_train_speakers": 4,
        "data.max_digits": 3,
        "data.duration": 1.2,
        "model.conv_channels": (8,),
        "model.num_mels": 16,
        "model.num_layers": 1,
        "model.decoder_layers": 1,
        "model.num_heads": 2,
        "model.features": 8,
        "model.hidden": 8,
      },
    )
  return config


def get_model(config):
  return speech_seq2seq.SpeechTranscriber(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir  # synthesised
  dataset = speech_strings.spoken_digit_strings(
    seed=config.seed, sample_rate=config.model.sample_rate, **config.data.to_dict()
  )
  if dataset.info["vocab_size"] != config.model.vocab_size:
    raise ValueError(
      f"the strings have {dataset.info['vocab_size']} tokens but "
      f"--config.model.vocab_size={config.model.vocab_size}"
    )
  return dataset


loss = speech_transcription.sequence_loss
evaluate = speech_transcription.evaluate
final_report = speech_transcription.final_report
TARGETS = {"test.wer": ("<=", 0.05)}
