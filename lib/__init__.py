"""Models, training and analyses of the book (see DESIGN.md)."""
import warnings

# tqdm.auto warns inside notebooks when ipywidgets is absent, then falls back to the text bar,
# which is what the book wants; the warning would otherwise print into every chapter.
warnings.filterwarnings("ignore", message="IProgress not found")
