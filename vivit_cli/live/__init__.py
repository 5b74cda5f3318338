"""Labels over time: the webcam and streams, the timeline of a long video, and what draws them."""
