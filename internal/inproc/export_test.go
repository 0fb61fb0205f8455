package inproc

// StreamWindow is streamWindow, for the tests.
const StreamWindow = streamWindow
