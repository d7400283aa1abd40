"""Models, training and analyses of the book.

Data flow, modules, cache, profiles, scale-out and how to add a task or an architecture:
``book/design.md`` (the page "How the book is built" of the built book).
"""
import warnings

# tqdm.auto warns inside notebooks when ipywidgets is absent, then falls back to the text bar,
# which is what the book wants; the warning would otherwise print into every chapter.
warnings.filterwarnings("ignore", message="IProgress not found")
