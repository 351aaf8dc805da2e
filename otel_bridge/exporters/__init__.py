"""The views: each subpackage turns `RequestRecord`s into what one tool reads."""
