"""Extraction: an article page's main text (trafilatura), and the body each article keeps.

| module | what it does |
| --- | --- |
| ``extractor`` | the chain on one page: precision, balanced and recall passes, doubts |
| ``options`` | what one extraction may do: the feed's options, the limits |
| ``page`` | what the chain reads of a page besides its text: metadata, language, selectors |
| ``author`` | the byline search, in one walk over the page |
| ``markup`` | puts back what the text pass leaves out: links, split paragraphs, images |
| ``text`` | plain text of HTML, and its language |
| ``body`` | the one body-choice policy: page or feed text, sanitised |
| ``pool`` | worker processes, one per core |
"""
