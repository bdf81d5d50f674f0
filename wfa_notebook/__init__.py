"""wfa_notebook: waveform analysis for digitizer data, notebook first."""
