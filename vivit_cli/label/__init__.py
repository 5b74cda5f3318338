"""`vivit label`: the labelling loop. Answers on disk, the order of videos, the head re-trained as answers come, the
previews a browser plays, and the local server and page (static/) that a person labels in."""
