"""kanoa desktop: streamed interpretations of scientific figures and tables from local models."""

__version__ = "0.1.0"
APP_ID = "io.github.kanoa.Desktop"
APP_NAME = "kanoa desktop"
