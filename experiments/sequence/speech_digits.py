"""Spoken digits (docs/curriculum.md#f23): a speech-recognition-style model hears one of
"zero" ... "nine" and names it. The words come from dlx's formant synthesiser
(dlx/data/speech.py: glottal pulses through formant resonators, noise fricatives, stops;
per-speaker pitch, vocal-tract length, accent and rate; per-utterance jitter, careless
or dropped consonants, a microphone tilt, a gain, and white-to-red noise at 0-20 dB
SNR), 0.8 s at 8 kHz; 3000 training utterances by 200 speakers, and validation (500)
and test (1000) said by speakers never heard in training. The words share sounds:
"five" and "nine" the same diphthong, "one" and "nine" the n.

The model (dlx/models/speech.py) computes the log-mel spectrogram inside the model, from
the raw audio (dlx/ops/audio.py: 25 ms Hann frames every 10 ms, 40 HTK mel bands,
standardised per utterance), masks 2 spans of up to 10 frames and 2 of up to 6 bands in
training (SpecAugment), runs two strided 1-D convolutions over time (81 frames -> 21
steps), a 2-layer pre-norm Transformer encoder (64 wide, 4 heads) and a classifier on
the time-averaged encoding; 105k parameters, AdamW, 2000 steps of 64.
`test.digit_error_rate` is 1 - accuracy: the fraction of test utterances (one spoken
digit each) whose digit is named wrongly, a classification error rate (there are no
sentences, so no ASR word error rate).

The report draws the log-mel input of one test utterance per word with its prediction
(spectrograms.png) and lists each digit's error rate and the most frequent confusions.

Expected: test digit error rate about 0.016 (bar 0.05), most errors "five" heard as
"nine" (experiments/sequence/README.md has the measurements).

  ./launch.sh speech_digits
"""

import ml_collections

from dlx import config as config_lib
from dlx import data
from dlx.models import speech
from dlx.tasks import speech as speech_task


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.data = ml_collections.ConfigDict(
    dict(
      num_train=3000,
      num_validation=500,
      num_test=1000,
      num_train_speakers=200,
      snr_db=(0.0, 20.0),
    )
  )
  config.model = config_lib.model_config(
    num_classes=10,
    sample_rate=8000,
    frame_length=200,
    hop_length=80,
    fft_length=256,
    num_mels=40,
    conv_channels=(64, 64),
    conv_kernel=5,
    conv_stride=2,
    num_layers=2,
    num_heads=4,
    features=64,
    hidden=128,
    dropout_rate=0.1,
    time_masks=2,
    time_mask_width=10,
    freq_masks=2,
    freq_mask_width=6,
  )
  config.num_spectrograms = 10  # test utterances in spectrograms.png
  config.batch_size = 64
  config.num_train_steps = 2000
  config.log_every_steps = 100
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 1000
  config.best_metric = "digit_error_rate"
  config.best_mode = "min"
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 1e-2
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 100
  config.optimizer.grad_clip_norm = 1.0
  if config_lib.SMOKE in args:
    config_lib.smoke(
      config,
      **{
        "data.num_train": 20,
        "data.num_validation": 10,
        "data.num_test": 10,
        "num_spectrograms": 2,  # drawing is most of the report's time
        "model.conv_channels": (8,),
        "model.num_mels": 16,
        "model.num_layers": 1,
        "model.num_heads": 2,
        "model.features": 8,
        "model.hidden": 8,
      },
    )
  return config


def get_model(config):
  return speech.SpeechClassifier(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir
  return data.load(
    "spoken_digits",
    seed=config.seed,
    sample_rate=config.model.sample_rate,
    **config.data.to_dict(),
  )


loss = speech_task.word_classification
final_report = speech_task.final_report
OUTPUTS = (speech_task.SPECTROGRAM_PLOT,)
TARGETS = {"test.digit_error_rate": ("<=", 0.05)}
