"""Extraction: an article page's main text (trafilatura), and the body each article keeps.

| module | what it does |
| --- | --- |
| ``extractor`` | the chain on one page: precision pass, recall pass, doubts, metadata |
| ``markup`` | puts back what the text pass leaves out: links, split paragraphs, images |
| ``text`` | plain text of HTML, and its language |
| ``body`` | the one body-choice policy: page or feed text, sanitised |
| ``pool`` | worker processes, one per core |
"""
