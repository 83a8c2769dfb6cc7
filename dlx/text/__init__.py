"""Text: tokenizers that turn strings into integer ids and back (see `tokenizers`)."""

from dlx.text.tokenizers import CharTokenizer
from dlx.text.tokenizers import load
from dlx.text.tokenizers import SentencePieceTokenizer
from dlx.text.tokenizers import Tokenizer
from dlx.text.tokenizers import WordTokenizer
