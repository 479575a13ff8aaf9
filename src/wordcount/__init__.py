"""wordcount: exact word count, locally or across stateless workers coordinated through Redis."""

__version__ = "0.1.0"
