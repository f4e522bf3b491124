"""One view per file: each reads the application state and emits intents; panels never
import the engine, the controller or one another."""
